-- A lost dispute is money the customer's bank has already returned to them: a refund of
-- the same payment on top of it pays them twice. What remains to refund is the captured
-- amount less the refunds and the chargebacks. A chargeback is what Razorpay says it took
-- from our balance for a decided dispute (amount_deducted, set when one is lost), or the
-- whole disputed amount for a lost one whose event did not say. A refund Razorpay made
-- without us (cause outside) is a fact and is kept whatever it adds up to.
CREATE FUNCTION charged_back_paise(razorpay_payment text) RETURNS bigint
    LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(CASE WHEN status = 'lost' AND amount_deducted_paise = 0
                             THEN amount_paise ELSE amount_deducted_paise END), 0)::bigint
    FROM disputes
    WHERE razorpay_payment_id = razorpay_payment AND status IN ('lost', 'closed')
$$;

-- Why a refund must not be sent to Razorpay now, or NULL: its payment's dispute is open
-- ('open': it waits for the decision; a dispute won leaves the money with us, and the
-- refund goes), or chargebacks and the refunds, this one included, add up to more than the
-- refunded payment ('charged_back': it never goes; an operator settles what is left).
CREATE FUNCTION refund_disputed(refund refunds) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT FROM disputes d
                     WHERE d.razorpay_payment_id = refund.razorpay_payment_id
                       AND d.status IN ('open', 'action_required', 'under_review'))
            THEN 'open'
        WHEN paid.refunded_paise + charged_back_paise(refund.razorpay_payment_id)
             > paid.amount_paise
            THEN 'charged_back'
    END
    FROM (SELECT refunded_paise, amount_paise FROM duplicate_payments
          WHERE id = refund.duplicate_payment_id
          UNION ALL
          SELECT refunded_paise, amount_paise FROM payments
          WHERE id = refund.payment_id AND refund.duplicate_payment_id IS NULL) paid
$$;

-- One check refuses a new refund of a disputed payment, open or charged back:
-- refund_disputed, after refunds_running_total (same event, triggers fire in name order),
-- so the refunded payment's row is locked and its total counts this refund. Applying a
-- dispute takes that lock first (shared/disputes.py): a dispute opened or lost while this
-- refund was being written is seen. The BEFORE INSERT trigger (migration 012) checked open
-- disputes before that lock, too early to see one; it now only names the refunded payment.
CREATE OR REPLACE FUNCTION refunds_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.razorpay_payment_id IS NULL THEN
        SELECT razorpay_payment_id INTO NEW.razorpay_payment_id
        FROM payments WHERE id = NEW.payment_id;
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION refunds_within_disputes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cause <> 'outside' AND refund_disputed(NEW) IS NOT NULL THEN
        RAISE EXCEPTION 'the payment is disputed, or chargebacks returned its money'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_not_while_disputed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refunds_within_disputes AFTER INSERT ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_within_disputes();
