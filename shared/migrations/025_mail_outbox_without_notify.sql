-- The mail sender is woken in process when the notifier enqueues, and polls for the rest;
-- nothing listens on the channel this trigger notified. A NOTIFY in a transaction makes
-- PostgreSQL serialise its commit with every other notifying commit on one database-wide
-- lock, and every confirmation's statement inserts into notifications (even when it inserts
-- no row, a statement trigger fires), so it goes, as the outbox's did.
DROP TRIGGER IF EXISTS notifications_wake ON notifications;
DROP FUNCTION IF EXISTS notifications_notify();
