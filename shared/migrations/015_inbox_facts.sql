-- The broker is not believed: an inbox row also holds a digest of the fact its event
-- reported, so a forger who reuses a real event's id on another fact does not make the
-- real event look like a duplicate. Rows written before have none and dedupe by id alone.
ALTER TABLE inbox ADD COLUMN fact bytea;
