-- The outbox relay is woken inside the producing process once its transaction has
-- committed, and sweeps for everything else. A NOTIFY in every producer transaction made
-- PostgreSQL serialise those commits on one database-wide lock, so it goes.
DROP TRIGGER IF EXISTS outbox_wake ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
