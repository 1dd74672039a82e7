-- SQLite mirror of the original group_members table; role holds the enum labels of PostgreSQL.
CREATE TABLE IF NOT EXISTS group_members
(
    group_id     TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    group_name   TEXT,
    group_remark TEXT,
    role         TEXT    NOT NULL DEFAULT 'Member' CHECK (role IN ('Owner', 'Admin', 'Member')),
    joined_at    INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS idx_group_members_user_id ON group_members (user_id);
