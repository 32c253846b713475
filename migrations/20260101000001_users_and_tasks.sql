-- Users and tasks, as in the original guide, with the fixes it lacked: timestamptz, CHECK
-- constraints for the fixed value sets, the index the task listing uses, updated_at kept by
-- the database on every UPDATE.

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      varchar(50)  NOT NULL UNIQUE,
    email         varchar(100) NOT NULL,
    password_hash text         NOT NULL,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9_.-]{3,50}$'),
    CONSTRAINT users_email_format CHECK (position('@' IN email) > 1)
);

-- Emails are unique regardless of case.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint       NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       varchar(200) NOT NULL,
    description text,
    status      varchar(20)  NOT NULL DEFAULT 'pending',
    priority    varchar(20)  NOT NULL DEFAULT 'medium',
    due_date    timestamptz,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT tasks_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT tasks_description_length CHECK (description IS NULL OR char_length(description) <= 10000),
    CONSTRAINT tasks_status_values CHECK (status IN ('pending', 'in_progress', 'completed')),
    CONSTRAINT tasks_priority_values CHECK (priority IN ('low', 'medium', 'high'))
);

-- A user's tasks, newest first (the listing and its keyset cursor); also serves the
-- ownership lookups by user.
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);

CREATE TRIGGER tasks_set_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
