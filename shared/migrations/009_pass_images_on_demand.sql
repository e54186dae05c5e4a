-- A pass is its signed token; its QR image is rendered when someone first needs the
-- picture (verify-payment answering the browser, or the confirmation mail) and stored
-- then, so confirming a booking renders nothing. NULL: not rendered yet.
ALTER TABLE passes ALTER COLUMN qr_data_url DROP NOT NULL;
