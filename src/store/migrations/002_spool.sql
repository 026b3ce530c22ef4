-- 002: uploads queued for import.
--
-- A completed upload is moved out of the client's folder into the spool
-- (data/spool/<import id>) before it is acknowledged; `spool` is set while
-- it waits there and cleared once its report is written and the file is
-- archived. Recovery at start finds unfinished work by this column.
ALTER TABLE imports ADD COLUMN spool TEXT;
CREATE INDEX imports_spooled ON imports(id) WHERE spool IS NOT NULL;
