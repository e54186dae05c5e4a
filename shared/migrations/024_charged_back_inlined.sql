-- What chargebacks took back from a payment, as a function PostgreSQL inlines into the
-- statement that uses it: `(SELECT paise FROM charged_back(p.razorpay_payment_id))` is
-- planned once with that statement. The scalar charged_back_paise (migration 018) is not
-- inlined: its body was planned anew in every statement that called it, which cost more
-- than the rest of the confirmation's check. Same definition; charged_back_paise now reads it.
CREATE FUNCTION charged_back(razorpay_payment text) RETURNS TABLE (paise bigint)
    LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(CASE WHEN status = 'lost' AND amount_deducted_paise = 0
                             THEN amount_paise ELSE amount_deducted_paise END), 0)::bigint
    FROM disputes
    WHERE razorpay_payment_id = razorpay_payment AND status IN ('lost', 'closed')
$$;
CREATE OR REPLACE FUNCTION charged_back_paise(razorpay_payment text) RETURNS bigint
    LANGUAGE sql STABLE AS $$
    SELECT paise FROM charged_back(razorpay_payment)
$$;
