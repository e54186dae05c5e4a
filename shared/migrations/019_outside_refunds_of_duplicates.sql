-- A refund made at Razorpay without us (cause outside) may be of a second capture of the
-- booking as well as of its kept payment: it then names that duplicate, so it counts
-- against the duplicate's total, not the booking's. Only our own refund of a duplicate
-- (cause duplicate_payment) must name one.
ALTER TABLE refunds DROP CONSTRAINT refunds_duplicate_names_its_payment;
ALTER TABLE refunds ADD CONSTRAINT refunds_duplicate_names_its_payment CHECK (CASE cause
    WHEN 'duplicate_payment' THEN duplicate_payment_id IS NOT NULL
    WHEN 'outside' THEN true
    ELSE duplicate_payment_id IS NULL END);
