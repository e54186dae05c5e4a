-- Lookups by booking must not read the whole history: their cost stays flat as it grows.
-- The partial unique indexes of 001 enforce the invariants but cannot serve an unqualified
-- `WHERE booking_id = $1`: payment-status, create-order and `a6pay booking` need this one.
-- (created_at second: create-order lists a booking's orders in creation order.)
CREATE INDEX IF NOT EXISTS payments_booking ON payments (booking_id, created_at);
