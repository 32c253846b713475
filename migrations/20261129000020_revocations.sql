-- Token revocation (POST /auth/logout, POST /auth/logout-all), shared by every auth-svc task
-- and pulled by the gateways by cursor (GET /internal/revocations?after=<seq>).
--
-- One append-only log ordered by seq. Writers take a transaction-level advisory lock before
-- inserting, so seq order is commit order and a reader that has seen seq N has seen every
-- committed entry below N (an identity column alone does not promise that: a transaction can
-- commit a lower seq after a higher one became visible). Rows are deleted once they can match
-- no live token (expires_at passed).

CREATE TYPE revocation_kind AS ENUM ('token', 'user');

CREATE TABLE revocations (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          revocation_kind NOT NULL,
    -- No foreign key: revocations of a deleted user are harmless and expire on their own.
    user_id       bigint      NOT NULL,
    -- kind = token: the revoked token's jti.
    jti           text,
    -- kind = user: every token of user_id with iat < issued_before (unix seconds) is revoked.
    issued_before bigint,
    -- After this no token the row can match is still valid.
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT revocations_shape CHECK (
        (kind = 'token' AND jti IS NOT NULL AND char_length(jti) BETWEEN 1 AND 128 AND issued_before IS NULL)
        OR (kind = 'user' AND jti IS NULL AND issued_before IS NOT NULL)
    )
);

-- Logging out twice is one revocation.
CREATE UNIQUE INDEX revocations_jti_key ON revocations (jti) WHERE kind = 'token';
-- The cut-off lookups of /auth/validate and login.
CREATE INDEX revocations_user_cutoff_idx ON revocations (user_id, issued_before) WHERE kind = 'user';
-- Pruning.
CREATE INDEX revocations_expires_idx ON revocations (expires_at);
