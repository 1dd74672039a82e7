-- Sandcat: durable token revocation (logout).
-- token_revocations.revoked_at is in unix seconds: every JWT of the user with iat <= revoked_at is refused.
CREATE TABLE IF NOT EXISTS token_revocations
(
    user_id    TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
