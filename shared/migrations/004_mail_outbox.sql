-- The notifications table becomes the mail outbox: a row is written in the transaction that
-- makes the fact it reports, and the notifier's sender delivers it over SMTP afterwards.
-- Subject and body are rendered when the mail is sent (from kind + booking + details), so
-- they may be empty until then; the recipient is the customer's address when enqueued.

ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'payment_confirmed', 'payment_failed', 'booking_cancelled',
    'refund_initiated', 'refund_processed', 'refund_failed'));

ALTER TABLE notifications
    ALTER COLUMN subject DROP NOT NULL,
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Rows written before mail existed were never sent: they go out now (pending).
    ADD COLUMN state           text NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'sent', 'failed')),
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a sender may (re)claim the row: now, after a back-off, or after a claim's lease.
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text,
    ADD COLUMN sent_at         timestamptz,
    ADD COLUMN message_id      text;

ALTER TABLE notifications ADD CONSTRAINT notifications_sent_has_time
    CHECK ((state = 'sent') = (sent_at IS NOT NULL));

-- The sender's claim query: due pending rows, oldest first.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_booking ON notifications (booking_id);

-- Wake the sender when a mail is enqueued (it also polls, so a lost NOTIFY only delays).
CREATE FUNCTION notifications_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('a6pay_mail', '');
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_wake AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_notify();
