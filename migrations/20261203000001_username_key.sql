-- One comparison rule for usernames (auth-svc's user::UsernameKey: NFKC, lower case, NFKC).
--
-- users.username_key holds the key every comparison uses (uniqueness here, login's lookup in
-- auth-svc). It is generated from username, so every writer (also an older auth-svc task during
-- a rolling deployment) stores it the same way: lower(username COLLATE "C"), ASCII lower case.
-- That is the Rust key of every name users_username_format admits (ASCII letters, digits, _.-;
-- NFKC leaves them unchanged). The earlier unique index on lower(username) followed the
-- database's locale: where its lower() does not fold ASCII as ASCII (tr_TR: lower('I') = 'ı'),
-- 'ALICE' and 'alice' could both be stored. Such accounts are handled as in
-- 20261129000001_unique_usernames_and_login_failures.sql: the oldest keeps its name, every
-- other one is renamed '<name>-<id>[-<n>]' and recorded in username_conflicts. Nothing is
-- deleted, and the migration never fails on such data.

-- Writers wait until the renames and the index are in place (readers are not blocked).
LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE;

CREATE INDEX users_username_ascii_scan ON users (lower(username COLLATE "C"));

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
                   row_number() OVER (PARTITION BY lower(username COLLATE "C") ORDER BY created_at, id) AS age_rank
            FROM users
        ) ranked
        WHERE age_rank > 1
        ORDER BY id
    LOOP
        attempt := 0;
        LOOP
            suffix := '-' || dup.id || CASE WHEN attempt > 0 THEN '-' || attempt ELSE '' END;
            candidate := left(dup.username, 50 - length(suffix)) || suffix;
            EXIT WHEN NOT EXISTS (
                SELECT 1 FROM users WHERE lower(username COLLATE "C") = lower(candidate COLLATE "C")
            );
            attempt := attempt + 1;
        END LOOP;
        UPDATE users SET username = candidate WHERE id = dup.id;
        -- An account renamed before keeps its first old name; the new name and time are updated
        -- and it awaits an operator again.
        INSERT INTO username_conflicts (user_id, old_username, new_username)
        VALUES (dup.id, dup.username, candidate)
        ON CONFLICT (user_id) DO UPDATE
            SET new_username = EXCLUDED.new_username, renamed_at = now(), resolved_at = NULL;
    END LOOP;
END;
$$;

DROP INDEX users_username_ascii_scan;

ALTER TABLE users ADD COLUMN username_key text GENERATED ALWAYS AS (lower(username COLLATE "C")) STORED;
CREATE UNIQUE INDEX users_username_key_key ON users (username_key);
DROP INDEX IF EXISTS users_username_lower_key;
