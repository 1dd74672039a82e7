-- Offline inbox (what MongoDB single_msg_box is for the original server, sandcat-wire.md §4.4),
-- keeping every field of the Msg (bug B10 of the original dropped platform, avatar, nickname,
-- related_msg_id). One row per stored copy; (server_id, receiver_id) identifies a copy so that
-- replays are no-ops.
CREATE TABLE IF NOT EXISTS inbox
(
    id             INTEGER PRIMARY KEY,
    server_id      TEXT    NOT NULL,
    receiver_id    TEXT    NOT NULL,
    send_id        TEXT    NOT NULL,
    local_id       TEXT    NOT NULL,
    group_id       TEXT    NOT NULL,
    create_time    INTEGER NOT NULL,
    send_time      INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    send_seq       INTEGER NOT NULL,
    msg_type       INTEGER NOT NULL,
    content_type   INTEGER NOT NULL,
    content        BLOB    NOT NULL,
    is_read        INTEGER NOT NULL DEFAULT 0,
    platform       INTEGER NOT NULL,
    avatar         TEXT    NOT NULL,
    nickname       TEXT    NOT NULL,
    related_msg_id TEXT,
    UNIQUE (server_id, receiver_id)
);
CREATE INDEX IF NOT EXISTS idx_inbox_receiver_seq ON inbox (receiver_id, seq);
CREATE INDEX IF NOT EXISTS idx_inbox_send_seq ON inbox (send_id, send_seq);
CREATE INDEX IF NOT EXISTS idx_inbox_send_time ON inbox (send_time);
