-- SQLite mirror of the original users table.
CREATE TABLE IF NOT EXISTS users
(
    id          TEXT PRIMARY KEY,
    name        TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    password    TEXT    NOT NULL,
    salt        TEXT    NOT NULL,
    signature   TEXT,
    avatar      TEXT    NOT NULL,
    gender      TEXT    NOT NULL,
    age         INTEGER NOT NULL DEFAULT 0,
    phone       TEXT,
    email       TEXT,
    address     TEXT,
    region      TEXT,
    birthday    INTEGER,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    is_delete   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_users_account ON users (account);
CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_phone ON users (phone);
