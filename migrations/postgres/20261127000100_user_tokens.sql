-- Sandcat: durable token revocation (logout) and lookup indexes for login and search.
-- token_revocations.revoked_at is in unix seconds: every JWT of the user with iat <= revoked_at is refused.
CREATE TABLE IF NOT EXISTS token_revocations
(
    user_id    VARCHAR PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_users_account ON users (account);
CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_phone ON users (phone);
