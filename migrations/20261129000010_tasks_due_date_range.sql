-- no-transaction
-- due_date holds only instants RFC 3339 can write: years 0000-9999 in UTC (issue 13). The API
-- checks this; the constraint keeps any other writer to the same rule, and task-svc maps its
-- name to a 400.
--
-- Safe on a populated table: three short transactions instead of one long one.
--  1. Add the constraint NOT VALID: an ACCESS EXCLUSIVE lock for a moment (no scan); from then
--     on every INSERT and UPDATE is checked. lock_timeout makes a busy table fail the start-up
--     (the service restarts and retries) rather than queue every query behind the ALTER.
--  2. Move rows stored before the API checked the range after applying the offset. Such a row
--     lies less than a day outside the range (offsets are at most 23:59), so it moves to the
--     nearest representable instant, by less than a day. Row locks only.
--  3. VALIDATE scans under SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
-- Each step can run again, should a start-up stop between them.
-- '0001-01-01 BC' is year 0000 in RFC 3339 / ISO 8601 numbering.

BEGIN;
SET LOCAL lock_timeout = '5s';
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'tasks'::regclass AND conname = 'tasks_due_date_range'
    ) THEN
        ALTER TABLE tasks ADD CONSTRAINT tasks_due_date_range
            CHECK (due_date >= '0001-01-01 00:00:00+00 BC' AND due_date < '10000-01-01 00:00:00+00')
            NOT VALID;
    END IF;
END
$$;
COMMIT;

BEGIN;
UPDATE tasks SET due_date = '9999-12-31 23:59:59.999+00' WHERE due_date >= '10000-01-01 00:00:00+00';
UPDATE tasks SET due_date = '0001-01-01 00:00:00+00 BC' WHERE due_date < '0001-01-01 00:00:00+00 BC';
COMMIT;

ALTER TABLE tasks VALIDATE CONSTRAINT tasks_due_date_range;
