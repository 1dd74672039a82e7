-- SQLite mirror of the original friendships table.
CREATE TABLE IF NOT EXISTS friendships
(
    id          TEXT PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    friend_id   TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'Pending'
        CHECK (status IN ('Pending', 'Accepted', 'Rejected', 'Blacked', 'Deleted')),
    apply_msg   TEXT,
    req_remark  TEXT,
    resp_msg    TEXT,
    resp_remark TEXT,
    source      TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER,
    UNIQUE (user_id, friend_id)
);
CREATE INDEX IF NOT EXISTS idx_friendships_friend_id ON friendships (friend_id);
