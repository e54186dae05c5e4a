-- A flagged settlement is judged again each day for a while (its recon may have been read
-- before all its items were out): the due index covers every settlement with a check due,
-- pending or flagged; a matched one has none.
DROP INDEX settlements_due;
CREATE INDEX settlements_due ON settlements (next_check_at) WHERE next_check_at IS NOT NULL;
