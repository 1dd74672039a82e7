-- SQLite mirror of the original friends table; status holds the enum labels of PostgreSQL.
CREATE TABLE IF NOT EXISTS friends
(
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fs_id       TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    friend_id   TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'Accepted'
        CHECK (status IN ('Pending', 'Accepted', 'Rejected', 'Blacked', 'Deleted')),
    remark      TEXT,
    source      TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    UNIQUE (user_id, friend_id)
);
CREATE INDEX IF NOT EXISTS idx_friends_fs_id ON friends (fs_id);
