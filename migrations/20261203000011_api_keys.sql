-- API keys for machine clients (OAuth 2.0 client credentials, RFC 6749 §4.4): a user creates a
-- key (POST /auth/api-keys) and gets its client_id and client_secret once; a client exchanges
-- them for short-lived access tokens at POST /auth/token. auth-svc's api_key module describes
-- the formats.
--
-- The secret itself is never stored: secret_hash is its SHA-256. The secret is 256 bits from a
-- CSPRNG, so a fast hash is enough (nobody can guess a preimage; a slow password hash would only
-- cost every exchange CPU time), as for GitHub's and Stripe's tokens. auth-svc compares hashes
-- in constant time.

CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    -- 'tmk_' + 22 base64url characters (128 random bits); public, names the key in tokens and logs.
    client_id    text        NOT NULL,
    secret_hash  bytea       NOT NULL,
    -- Space-separated scope tokens (RFC 6749 §3.3), e.g. 'tasks:read tasks:write'.
    scopes       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- NULL: the key does not expire.
    expires_at   timestamptz,
    -- Set once by DELETE /auth/api-keys/{id}; a revoked key never authenticates again.
    revoked_at   timestamptz,
    -- The last successful exchange, at one-minute resolution (auth-svc skips the write when the
    -- stored time is less than a minute old).
    last_used_at timestamptz,
    CONSTRAINT api_keys_client_id_key UNIQUE (client_id),
    CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT api_keys_client_id_format CHECK (client_id ~ '^tmk_[A-Za-z0-9_-]{22}$'),
    CONSTRAINT api_keys_secret_hash_length CHECK (octet_length(secret_hash) = 32),
    CONSTRAINT api_keys_scopes_format CHECK (scopes ~ '^[a-z]+:[a-z]+( [a-z]+:[a-z]+)*$'),
    CONSTRAINT api_keys_expiry CHECK (expires_at IS NULL OR expires_at > created_at)
);

-- A user's keys: the listing and the per-user limit of live keys.
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at);

-- kind = api_key: every token whose client_id claim is client_id is revoked, whenever issued.
ALTER TABLE revocations ADD COLUMN client_id text;

ALTER TABLE revocations
    DROP CONSTRAINT revocations_shape,
    ADD CONSTRAINT revocations_shape CHECK (
        (kind = 'token' AND jti IS NOT NULL AND char_length(jti) BETWEEN 1 AND 128
            AND issued_before IS NULL AND client_id IS NULL)
        OR (kind = 'user' AND jti IS NULL AND issued_before IS NOT NULL AND client_id IS NULL)
        OR (kind = 'api_key' AND jti IS NULL AND issued_before IS NULL
            AND client_id IS NOT NULL AND char_length(client_id) BETWEEN 1 AND 128)
    );
