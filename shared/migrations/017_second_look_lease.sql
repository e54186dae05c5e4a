-- A second look is leased while it runs and marked done only in the transaction that records
-- what it found: a replica that stops between the claim and that commit (a deploy, a crash,
-- the database away) leaves the look to the next claim once the lease has run out.
ALTER TABLE payments ADD COLUMN second_look_leased_until timestamptz;
