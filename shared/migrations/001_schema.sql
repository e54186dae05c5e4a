-- A6 Pay schema. Amounts are integer paise; statuses are checked here and in shared/.

CREATE TABLE customers (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    phone       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cars (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    registration text
);

CREATE TABLE bookings (
    id            bigserial PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES customers(id),
    car_id        bigint NOT NULL REFERENCES cars(id),
    amount_paise  bigint NOT NULL CHECK (amount_paise > 0),
    start_date    date NOT NULL,
    end_date      date NOT NULL CHECK (end_date >= start_date),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    confirmed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_customer ON bookings (customer_id);

-- One row per Razorpay order.
CREATE TABLE payments (
    id                  bigserial PRIMARY KEY,
    booking_id          bigint NOT NULL REFERENCES bookings(id),
    customer_id         bigint NOT NULL REFERENCES customers(id),
    razorpay_order_id   text NOT NULL UNIQUE,
    receipt             text NOT NULL,
    amount_paise        bigint NOT NULL CHECK (amount_paise > 0),
    currency            text NOT NULL DEFAULT 'INR',
    status              text NOT NULL DEFAULT 'created'
                        CHECK (status IN ('created', 'failed', 'authorized', 'captured')),
    razorpay_payment_id text,
    failure_code        text,
    failure_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    captured_at         timestamptz,
    reconcile_attempts  integer NOT NULL DEFAULT 0,
    next_reconcile_at   timestamptz
);
-- At most one open order per booking, and at most one captured payment per booking.
CREATE UNIQUE INDEX payments_one_open_order_per_booking
    ON payments (booking_id) WHERE status <> 'captured';
CREATE UNIQUE INDEX payments_one_capture_per_booking
    ON payments (booking_id) WHERE status = 'captured';
-- A Razorpay payment settles exactly one of our orders.
CREATE UNIQUE INDEX payments_payment_id
    ON payments (razorpay_payment_id) WHERE status = 'captured';
CREATE INDEX payments_reconcile_due
    ON payments (next_reconcile_at) WHERE status <> 'captured';

-- Transactional outbox: written in the same transaction as the state change.
CREATE TABLE outbox (
    id            uuid PRIMARY KEY,
    routing_key   text NOT NULL,
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('a6pay_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_wake AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Consumer-side dedupe: (consumer, event id) recorded in the same transaction as the effect.
CREATE TABLE inbox (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Every authentic webhook delivery, once per event key.
CREATE TABLE webhook_events (
    event_key           text PRIMARY KEY,
    event_type          text NOT NULL,
    razorpay_order_id   text,
    razorpay_payment_id text,
    outcome             text NOT NULL,
    payload             jsonb NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE passes (
    id          bigserial PRIMARY KEY,
    booking_id  bigint NOT NULL REFERENCES bookings(id),
    kind        text NOT NULL CHECK (kind IN ('collection', 'return')),
    token       text NOT NULL,
    qr_data_url text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (booking_id, kind)
);

CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    booking_id  bigint NOT NULL REFERENCES bookings(id),
    customer_id bigint NOT NULL REFERENCES customers(id),
    kind        text NOT NULL CHECK (kind IN ('payment_confirmed', 'payment_failed')),
    dedupe_key  text NOT NULL UNIQUE,
    channel     text NOT NULL DEFAULT 'email',
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
