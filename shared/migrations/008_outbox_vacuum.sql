-- Rows leave a partial index on every paid booking: an outbox row is published (it leaves
-- the relay's claim index), a payment is captured (it leaves payments_reconcile_due), a
-- booking is confirmed (it leaves bookings_pending). Until VACUUM, each one's old entry
-- stays, and the claim, the lag gauge, the reconciler's and the repair's sweeps step over
-- every one of them, page after page, until a vacuum clears them.
-- The default trigger waits for 20% of a table to be dead: 400,000 rows of a 2,000,000-row
-- outbox, more the longer the history. These three are vacuumed after a fixed count instead,
-- whatever their size (a VACUUM that finds few dead rows skips the index pass).
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
ALTER TABLE payments SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
ALTER TABLE bookings SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
