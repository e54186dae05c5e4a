-- The relay claims unsent rows in (attempts, created_at) order (rows that failed before
-- come last). An index in that order lets each claim read its batch and stop; with the old
-- one on created_at alone, every claim read and sorted the whole backlog, and a backlog is
-- exactly when the relay must be quick (after a broker outage, under a burst). The lag
-- gauge (count and oldest of the unsent rows) reads this one as well as the old.
DROP INDEX IF EXISTS outbox_unsent;
CREATE INDEX outbox_claim_order ON outbox (attempts, created_at) WHERE published_at IS NULL;
