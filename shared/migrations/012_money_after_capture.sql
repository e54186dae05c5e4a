-- The money after capture: second captures refunded, refunds made anywhere, disputes.

-- A captured payment for a booking that already has one (a second payment on its order, or
-- on another order of it). Its own row, so its refund is capped by its own amount and
-- happens once, whichever path (webhook, verify, reconcile) finds it first.
CREATE TABLE duplicate_payments (
    id                  bigserial PRIMARY KEY,
    booking_id          bigint NOT NULL REFERENCES bookings(id),
    payment_id          bigint NOT NULL REFERENCES payments(id),  -- the order it was paid on
    razorpay_payment_id text NOT NULL UNIQUE,
    amount_paise        bigint NOT NULL CHECK (amount_paise > 0),
    refunded_paise      bigint NOT NULL DEFAULT 0,
    found_by            text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT duplicate_payments_refund_cap
        CHECK (refunded_paise >= 0 AND refunded_paise <= amount_paise)
);
CREATE INDEX duplicate_payments_booking ON duplicate_payments (booking_id);

-- Every refund names the Razorpay payment it refunds: the booking's capture, or a duplicate.
ALTER TABLE refunds
    ADD COLUMN razorpay_payment_id text,
    ADD COLUMN duplicate_payment_id bigint REFERENCES duplicate_payments(id);
UPDATE refunds r SET razorpay_payment_id = p.razorpay_payment_id
FROM payments p WHERE p.id = r.payment_id AND r.razorpay_payment_id IS NULL;
ALTER TABLE refunds DROP CONSTRAINT refunds_cause_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_cause_check CHECK (cause IN (
    'admin', 'cancellation', 'captured_after_cancellation', 'duplicate_payment', 'outside'));
ALTER TABLE refunds ADD CONSTRAINT refunds_duplicate_names_its_payment
    CHECK ((cause = 'duplicate_payment') = (duplicate_payment_id IS NOT NULL));
CREATE UNIQUE INDEX refunds_one_refund_per_duplicate
    ON refunds (duplicate_payment_id) WHERE cause = 'duplicate_payment' AND status <> 'failed';
CREATE INDEX refunds_razorpay_payment ON refunds (razorpay_payment_id);

-- The running totals, now per refunded payment: a duplicate's refunds count against the
-- duplicate, every other refund against the booking's captured payment (as before).
CREATE OR REPLACE FUNCTION refunds_running_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.duplicate_payment_id IS NOT NULL THEN
            UPDATE duplicate_payments SET refunded_paise = refunded_paise + NEW.amount_paise
            WHERE id = NEW.duplicate_payment_id AND booking_id = NEW.booking_id;
        ELSE
            UPDATE payments SET refunded_paise = refunded_paise + NEW.amount_paise
            WHERE id = NEW.payment_id AND status = 'captured' AND booking_id = NEW.booking_id;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'only a captured payment of this booking can be refunded'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_captured_payment';
        END IF;
    ELSE
        IF NEW.amount_paise <> OLD.amount_paise OR NEW.payment_id <> OLD.payment_id
           OR NEW.duplicate_payment_id IS DISTINCT FROM OLD.duplicate_payment_id THEN
            RAISE EXCEPTION 'a refund''s amount and payment never change'
                USING ERRCODE = 'check_violation';
        END IF;
        IF NOT (NEW.status = OLD.status
                OR (OLD.status = 'requested' AND NEW.status IN ('pending', 'processed', 'failed'))
                OR (OLD.status = 'pending' AND NEW.status IN ('processed', 'failed'))) THEN
            RAISE EXCEPTION 'refund status % cannot become %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.status = 'failed' AND OLD.status <> 'failed' THEN
            IF OLD.duplicate_payment_id IS NOT NULL THEN
                UPDATE duplicate_payments SET refunded_paise = refunded_paise - OLD.amount_paise
                WHERE id = OLD.duplicate_payment_id;
            ELSE
                UPDATE payments SET refunded_paise = refunded_paise - OLD.amount_paise
                WHERE id = OLD.payment_id;
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- Disputes (chargebacks): one row per Razorpay dispute, its status moved forward only
-- (shared/dispute_state.py). A dispute may arrive before the capture it disputes: the
-- payment and booking are filled in once that capture is known.
CREATE TABLE disputes (
    id                      bigserial PRIMARY KEY,
    razorpay_dispute_id     text NOT NULL UNIQUE,
    razorpay_payment_id     text NOT NULL,
    payment_id              bigint REFERENCES payments(id),
    booking_id              bigint REFERENCES bookings(id),
    amount_paise            bigint NOT NULL CHECK (amount_paise > 0),
    amount_deducted_paise   bigint NOT NULL DEFAULT 0 CHECK (amount_deducted_paise >= 0),
    currency                text NOT NULL DEFAULT 'INR',
    status                  text NOT NULL CHECK (status IN (
                                'open', 'action_required', 'under_review',
                                'won', 'lost', 'closed')),
    phase                   text,
    reason_code             text,
    reason_description      text,
    respond_by              timestamptz,
    -- Razorpay's time of the latest event applied: an older one never moves it back
    razorpay_updated_at     timestamptz NOT NULL,
    evidence_submitted_at   timestamptz,
    document_ids            text[],
    ops_notified_at         timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT disputes_booking_with_payment CHECK ((payment_id IS NULL) = (booking_id IS NULL))
);
CREATE INDEX disputes_payment ON disputes (razorpay_payment_id);
CREATE INDEX disputes_booking ON disputes (booking_id);
CREATE INDEX disputes_open ON disputes (respond_by)
    WHERE status IN ('open', 'action_required', 'under_review');
CREATE INDEX disputes_unlinked ON disputes (razorpay_payment_id) WHERE booking_id IS NULL;
CREATE INDEX disputes_ops_unnotified ON disputes (id) WHERE ops_notified_at IS NULL;

-- Every change a dispute went through, as Razorpay reported it.
CREATE TABLE dispute_changes (
    id              bigserial PRIMARY KEY,
    dispute_id      bigint NOT NULL REFERENCES disputes(id),
    event           text NOT NULL,
    from_status     text,
    to_status       text NOT NULL,
    amount_deducted_paise bigint NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dispute_changes_dispute ON dispute_changes (dispute_id);

CREATE FUNCTION disputes_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.razorpay_dispute_id <> OLD.razorpay_dispute_id
       OR NEW.razorpay_payment_id <> OLD.razorpay_payment_id THEN
        RAISE EXCEPTION 'a dispute''s ids never change' USING ERRCODE = 'check_violation';
    END IF;
    IF NOT (NEW.status = OLD.status
            OR (OLD.status = 'open' AND NEW.status IN (
                'action_required', 'under_review', 'won', 'lost', 'closed'))
            OR (OLD.status = 'action_required' AND NEW.status IN (
                'under_review', 'won', 'lost', 'closed'))
            OR (OLD.status = 'under_review' AND NEW.status IN (
                'action_required', 'won', 'lost', 'closed'))) THEN
        RAISE EXCEPTION 'dispute status % cannot become %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER disputes_forward_only BEFORE UPDATE ON disputes
    FOR EACH ROW EXECUTE FUNCTION disputes_forward_only();

-- A refund names the Razorpay payment it refunds (the booking's capture unless given), and
-- no refund of a payment is made while its dispute is open: the customer must not get the
-- money twice. A refund made at Razorpay without us (cause outside) is a fact, kept anyway.
CREATE FUNCTION refunds_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.razorpay_payment_id IS NULL THEN
        SELECT razorpay_payment_id INTO NEW.razorpay_payment_id
        FROM payments WHERE id = NEW.payment_id;
    END IF;
    IF NEW.cause <> 'outside' AND EXISTS (
        SELECT FROM disputes d WHERE d.razorpay_payment_id = NEW.razorpay_payment_id
          AND d.status IN ('open', 'action_required', 'under_review')) THEN
        RAISE EXCEPTION 'the payment has an open dispute'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_not_while_disputed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refunds_before_insert BEFORE INSERT ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_before_insert();

-- Mail kinds: the customer's "charged twice" mail, and the ops mail about a new dispute.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'payment_confirmed', 'payment_failed', 'booking_cancelled',
    'refund_initiated', 'refund_processed', 'refund_failed',
    'duplicate_payment_refund', 'dispute_opened'));
