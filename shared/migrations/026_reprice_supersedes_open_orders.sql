-- The booking's amount is the price; the A6 Cars site writes it. An order still open for
-- another amount when the price changes is superseded there and then, as create-order does
-- when it is asked again: a Checkout left open on it is then refunded, never taken as paying
-- the booking at the old price. An order already authorized stays: its money is on the way,
-- as create-order leaves it too.
CREATE FUNCTION bookings_supersede_orders_at_old_price() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payments SET superseded_at = now()
    WHERE booking_id = NEW.id AND status IN ('created', 'failed') AND superseded_at IS NULL
      AND amount_paise <> NEW.amount_paise;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_reprice AFTER UPDATE OF amount_paise ON bookings
    FOR EACH ROW WHEN (OLD.amount_paise IS DISTINCT FROM NEW.amount_paise)
    EXECUTE FUNCTION bookings_supersede_orders_at_old_price();
