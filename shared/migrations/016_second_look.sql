-- A captured order is asked about once more, RECONCILE_FIRST_DELAY_SECONDS after its capture:
-- a second payment captured on it whose webhooks were all lost, and that nobody verified, is
-- found then and refunded (order_service/reconciler.py, shared/duplicate_payments.py).
-- A constant default: no table rewrite; rows captured before this look no more.
ALTER TABLE payments ADD COLUMN second_look_due boolean NOT NULL DEFAULT false;
CREATE INDEX payments_second_look ON payments (captured_at) WHERE second_look_due;
