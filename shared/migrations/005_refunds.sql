-- Cancellations and refunds. A refund row is written before Razorpay is asked; its status
-- only moves forward (shared/refund_state.py). At most the captured amount is ever refunded:
-- payments.refunded_paise is the running total of refunds not failed, kept by a trigger
-- that updates (and so row-locks) the payment, and checked against the captured amount.

ALTER TABLE bookings
    ADD COLUMN cancelled_at            timestamptz,
    ADD COLUMN cancellation_reason     text,
    ADD COLUMN cancellation_fee_paise  bigint CHECK (cancellation_fee_paise >= 0);

ALTER TABLE passes ADD COLUMN revoked_at timestamptz;

ALTER TABLE payments
    ADD COLUMN refunded_paise bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT payments_refund_cap
        CHECK (refunded_paise >= 0 AND refunded_paise <= amount_paise);

CREATE TABLE refunds (
    id                  bigserial PRIMARY KEY,
    payment_id          bigint NOT NULL REFERENCES payments(id),
    booking_id          bigint NOT NULL REFERENCES bookings(id),
    amount_paise        bigint NOT NULL CHECK (amount_paise > 0),
    status              text NOT NULL DEFAULT 'requested'
                        CHECK (status IN ('requested', 'pending', 'processed', 'failed')),
    -- why: admin (the endpoint or the CLI), cancellation, or captured_after_cancellation
    cause               text NOT NULL
                        CHECK (cause IN ('admin', 'cancellation', 'captured_after_cancellation')),
    reason              text,
    razorpay_refund_id  text UNIQUE,
    idempotency_key     text UNIQUE,  -- the admin request that asked for it, if any
    failure_reason      text,
    attempts            integer NOT NULL DEFAULT 0,
    -- when someone may next talk to Razorpay about it (submit, or poll while pending);
    -- a claim pushes it into the future, so it is also the claim's lease
    next_check_at       timestamptz DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    processed_at        timestamptz
);
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_booking ON refunds (booking_id);
CREATE INDEX refunds_due ON refunds (next_check_at) WHERE status IN ('requested', 'pending');
CREATE INDEX refunds_failed ON refunds (updated_at) WHERE status = 'failed';
-- A payment captured after its booking was cancelled is refunded automatically, once.
CREATE UNIQUE INDEX refunds_one_auto_refund_per_payment
    ON refunds (payment_id) WHERE cause = 'captured_after_cancellation' AND status <> 'failed';
-- A cancellation refunds once (a failed one may be followed by another).
CREATE UNIQUE INDEX refunds_one_cancellation_refund_per_payment
    ON refunds (payment_id) WHERE cause = 'cancellation' AND status <> 'failed';

CREATE FUNCTION refunds_running_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE payments SET refunded_paise = refunded_paise + NEW.amount_paise
        WHERE id = NEW.payment_id AND status = 'captured' AND booking_id = NEW.booking_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'only a captured payment of this booking can be refunded'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_captured_payment';
        END IF;
    ELSE
        IF NEW.amount_paise <> OLD.amount_paise OR NEW.payment_id <> OLD.payment_id THEN
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
            UPDATE payments SET refunded_paise = refunded_paise - OLD.amount_paise
            WHERE id = OLD.payment_id;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refunds_running_total AFTER INSERT OR UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_running_total();

-- Admin requests made idempotent by their Idempotency-Key: the first answer is kept and
-- given again; the same key with another body is refused.
CREATE TABLE idempotent_requests (
    endpoint       text NOT NULL,
    key            text NOT NULL,
    request_hash   text NOT NULL,
    status_code    integer,
    response       jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    PRIMARY KEY (endpoint, key)
);
