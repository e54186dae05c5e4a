-- An open order made for a booking's earlier price is never handed out again: create-order
-- marks it superseded (only while nothing was paid on it: created or failed) and makes a new
-- order for the current amount. The superseded row stays, so a payment that still arrives
-- on the old order is recognised as ours; "one open order per booking" counts the rest.
ALTER TABLE payments ADD COLUMN superseded_at timestamptz;
DROP INDEX payments_one_open_order_per_booking;
CREATE UNIQUE INDEX payments_one_open_order_per_booking
    ON payments (booking_id) WHERE status <> 'captured' AND superseded_at IS NULL;
