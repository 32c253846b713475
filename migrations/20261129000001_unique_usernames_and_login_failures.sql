-- Login and registration throttling (issue 9, section 3).
--
-- 1. Usernames become unique regardless of case. A database may already hold names that differ
--    only in case ('Alice' and 'alice'): the oldest account keeps its name, every other one is
--    renamed deterministically and recorded in username_conflicts for an operator. The migration
--    never fails on such data, so a service always starts.
-- 2. login_failures: the per-account failed-login counter every auth-svc task shares.

-- Writers wait until the renames and the index are in place (readers are not blocked): a row
-- inserted between the renames and CREATE UNIQUE INDEX by a still-running older task would
-- otherwise make the index creation, and so the start-up, fail.
LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE;

-- Accounts renamed by this migration. resolved_at stays NULL until an operator has dealt with
-- the account (told its owner, merged it, ...); auth-svc warns at start while any is unresolved.
CREATE TABLE username_conflicts (
    user_id      bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    old_username varchar(50) NOT NULL,
    new_username varchar(50) NOT NULL,
    renamed_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);

-- Makes the collision checks of the rename loop index lookups; replaced by the unique index below.
CREATE INDEX users_username_lower_scan ON users (lower(username));

-- Every account but the oldest (created_at, then id) of each case-insensitive name becomes
-- '<name>-<id>' (the name cut so the result stays within 50 characters); if that is taken too,
-- '<name>-<id>-<n>' with the smallest free n. Only [A-Za-z0-9_.-] is added, so the result
-- satisfies users_username_format. Renames run in id order, so the outcome is deterministic.
DO $$
DECLARE
    dup       record;
    suffix    text;
    candidate text;
    attempt   integer;
BEGIN
    FOR dup IN
        SELECT id, username
        FROM (
            SELECT id, username,
                   row_number() OVER (PARTITION BY lower(username) ORDER BY created_at, id) AS age_rank
            FROM users
        ) ranked
        WHERE age_rank > 1
        ORDER BY id
    LOOP
        attempt := 0;
        LOOP
            suffix := '-' || dup.id || CASE WHEN attempt > 0 THEN '-' || attempt ELSE '' END;
            candidate := left(dup.username, 50 - length(suffix)) || suffix;
            EXIT WHEN NOT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower(candidate));
            attempt := attempt + 1;
        END LOOP;
        UPDATE users SET username = candidate WHERE id = dup.id;
        INSERT INTO username_conflicts (user_id, old_username, new_username)
        VALUES (dup.id, dup.username, candidate);
    END LOOP;
END;
$$;

DROP INDEX users_username_lower_scan;

-- Login looks users up by lower(username) through this index. The case-sensitive constraint of
-- the first migration is implied by it.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
ALTER TABLE users DROP CONSTRAINT users_username_key;

-- Failed logins per account, keyed on the lower-cased username as typed, whether or not such an
-- account exists (a limit only for real accounts would reveal which names exist). An attempt
-- counts from the moment it starts (so concurrent guesses cannot overshoot the limit) and is
-- given back if it ended before a password was checked; a success deletes the row; a row whose
-- window has passed is reset by the next attempt or deleted by auth-svc's periodic clean-up.
CREATE TABLE login_failures (
    username     text        PRIMARY KEY,
    failures     integer     NOT NULL CHECK (failures >= 0),
    window_start timestamptz NOT NULL
);

-- The clean-up's range scan.
CREATE INDEX login_failures_window_start_idx ON login_failures (window_start);
