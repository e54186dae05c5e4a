-- A delivery's outcome is one of a closed set (shared/webhook_outcome.py), as a booking's
-- and a payment's status are. NOT VALID, then VALIDATE: existing rows are checked without
-- holding off the webhook's inserts for the length of the scan.
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_outcome_check CHECK (outcome IN (
    'applied', 'duplicate', 'stale', 'unknown_order', 'unknown_refund', 'amount_mismatch',
    'conflict', 'ignored_event', 'unusable_payload', 'outside_refund_over_cap')) NOT VALID;
ALTER TABLE webhook_events VALIDATE CONSTRAINT webhook_events_outcome_check;
