-- An order made for an earlier price of its booking (superseded by create-order) is never
-- the booking's capture: a payment on it is a capture the booking does not keep, recorded
-- in duplicate_payments and refunded in full (shared/duplicate_payments.py). NOT VALID: a
-- row captured before this rule is left as it is.
ALTER TABLE payments ADD CONSTRAINT payments_superseded_never_captured
    CHECK (superseded_at IS NULL OR status <> 'captured') NOT VALID;

-- The customer's mail about it.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'payment_confirmed', 'payment_failed', 'booking_cancelled',
    'refund_initiated', 'refund_processed', 'refund_failed',
    'duplicate_payment_refund', 'old_price_payment_refund', 'dispute_opened'));
