-- Revoking an API key (DELETE /auth/api-keys/{id}) revokes every token its client_id claim
-- names: a revocation of its own kind on the feed the gateways pull.
--
-- Only the enum value is added here. ALTER TYPE ... ADD VALUE runs inside a transaction block
-- (PostgreSQL 12 and later; sqlx applies each migration in a transaction of its own), but the
-- new value cannot be used before that transaction commits ("unsafe use of new value"), so the
-- constraint and the table that use it are the next migration, 20261203000011_api_keys.sql.
ALTER TYPE revocation_kind ADD VALUE IF NOT EXISTS 'api_key';
