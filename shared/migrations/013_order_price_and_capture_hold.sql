-- An open order made for a booking's earlier price is never handed out again: create-order
-- marks it superseded (only while nothing was paid on it: created or failed) and makes a new
-- order for the current amount. The superseded row stays, so a payment that still arrives
-- on the old order is recognised as ours; "one open order per booking" counts the rest.
ALTER TABLE payments ADD COLUMN superseded_at timestamptz;
DROP INDEX payments_one_open_order_per_booking;
CREATE UNIQUE INDEX payments_one_open_order_per_booking
    ON payments (booking_id) WHERE status <> 'captured' AND superseded_at IS NULL;

-- With CAPTURE_ON_VERIFY, why an authorized payment was deliberately not captured (its
-- booking was cancelled: Razorpay releases the authorization, no fee is lost on a refund).
ALTER TABLE payments ADD COLUMN capture_withheld text;
