-- Passes at the counter. A booking moves confirmed -> collected -> returned as its passes
-- are scanned (shared/booking_state.py); each pass is scanned once, the scan and the move
-- in one transaction (order_service/pass_scans.py).

ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('pending', 'confirmed', 'collected', 'returned', 'cancelled'));
ALTER TABLE bookings
    ADD COLUMN collected_at timestamptz,
    ADD COLUMN returned_at  timestamptz;

-- Forward only, whoever writes the row: exactly the pairs of shared/booking_state.py (a
-- test walks every pair against this trigger). The WHEN clause is plain SQL evaluated by
-- the executor, so an allowed move (every confirmation) never calls the function.
CREATE FUNCTION bookings_refuse_status_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'booking status % cannot become %', OLD.status, NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_status_forward_only';
END $$;
CREATE TRIGGER bookings_status_forward_only BEFORE UPDATE OF status ON bookings
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND (OLD.status, NEW.status)
        NOT IN (('pending', 'confirmed'), ('pending', 'cancelled'), ('confirmed', 'collected'),
                ('confirmed', 'cancelled'), ('collected', 'returned')))
    EXECUTE FUNCTION bookings_refuse_status_move();

-- One scan per pass: the pass must have been issued (the foreign key), and is used once
-- (the primary key), whatever races.
CREATE TABLE pass_scans (
    booking_id  bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('collection', 'return')),
    result      text NOT NULL CHECK (result IN ('collected', 'returned')),
    scanned_at  timestamptz NOT NULL DEFAULT now(),
    request_id  text,  -- the gateway's request id: the scan's trail in the logs
    PRIMARY KEY (booking_id, kind),
    FOREIGN KEY (booking_id, kind) REFERENCES passes (booking_id, kind),
    CHECK ((kind, result) IN (('collection', 'collected'), ('return', 'returned')))
);
