-- Settlements and their recon items (shared/settlements.py). Amounts are integer paise.
-- A settlement's status only moves forward (shared/settlement_state.py); the checks below
-- keep a verdict and its difference in agreement.

CREATE TABLE settlements (
    settlement_id     text PRIMARY KEY,
    utr               text,
    amount_paise      bigint NOT NULL,
    fees_paise        bigint NOT NULL DEFAULT 0,
    tax_paise         bigint NOT NULL DEFAULT 0,
    settled_at        timestamptz NOT NULL,
    source            text NOT NULL CHECK (source IN ('webhook', 'poll')),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'matched', 'flagged')),
    items             integer NOT NULL DEFAULT 0,
    difference_paise  bigint,  -- its items' credits minus debits, minus its amount
    -- when a reconciler may next fetch its day's items; a claim pushes it into the future
    next_check_at     timestamptz DEFAULT now(),
    reconciled_at     timestamptz,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT settlements_verdict CHECK (
        (status = 'pending' AND difference_paise IS NULL)
        OR (status = 'matched' AND difference_paise = 0)
        OR (status = 'flagged' AND difference_paise <> 0))
);
CREATE INDEX settlements_due ON settlements (next_check_at) WHERE status = 'pending';
CREATE INDEX settlements_newest ON settlements (settled_at DESC);
CREATE INDEX settlements_flagged ON settlements (settled_at) WHERE status = 'flagged';

-- One row per recon item, recorded against our payment or refund when we know the entity
-- (unknown ones are kept with no link). Disputes are linked by Razorpay's dispute id as
-- text: the disputes table is not ours to reference.
CREATE TABLE settlement_items (
    settlement_id   text NOT NULL,
    entity_id       text NOT NULL,
    type            text NOT NULL CHECK (type IN ('payment', 'refund', 'transfer', 'adjustment')),
    credit_paise    bigint NOT NULL CHECK (credit_paise >= 0),
    debit_paise     bigint NOT NULL CHECK (debit_paise >= 0),
    amount_paise    bigint NOT NULL,
    fee_paise       bigint NOT NULL DEFAULT 0,  -- GST included, as Razorpay reports it
    tax_paise       bigint NOT NULL DEFAULT 0,  -- the GST within the fee
    utr             text,
    order_id        text,
    payment_id      text,  -- Razorpay's payment a refund or an adjustment belongs to
    dispute_id      text,
    method          text,
    created_at      timestamptz NOT NULL,  -- when the money moved (capture, refund, ...)
    settled_at      timestamptz NOT NULL,
    payment_ref     bigint REFERENCES payments(id),
    refund_ref      bigint REFERENCES refunds(id),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (settlement_id, entity_id)
);
CREATE INDEX settlement_items_payment ON settlement_items (payment_ref)
    WHERE payment_ref IS NOT NULL;
CREATE INDEX settlement_items_refund ON settlement_items (refund_ref)
    WHERE refund_ref IS NOT NULL;
-- The ledger reads a month's items by the day the money moved, whatever the history.
CREATE INDEX settlement_items_created ON settlement_items (created_at);

-- The ledger's and the unsettled check's range scans over captured payments.
CREATE INDEX payments_captured_at ON payments (captured_at) WHERE status = 'captured';
CREATE INDEX refunds_processed_at ON refunds (processed_at) WHERE status = 'processed';
