-- create-order claims a booking here in one short transaction, calls Razorpay with no
-- transaction open, then records the order in payments and drops the claim in a second one.
-- The primary key makes racing creates for one booking agree on a single caller; a claim
-- whose process died is taken over once its lease has passed.
CREATE TABLE order_claims (
    booking_id   bigint PRIMARY KEY REFERENCES bookings(id),
    claim_id     uuid NOT NULL,
    lease_until  timestamptz NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now()
);

-- The stuck-payment sweep (order_service/repair.py): captured payments whose booking is
-- still pending. It starts from the pending bookings (a partial index) and re-emits each
-- event with growing gaps, counted here.
ALTER TABLE payments
    ADD COLUMN repair_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN repaired_at timestamptz;
CREATE INDEX bookings_pending ON bookings (id) WHERE status = 'pending';
