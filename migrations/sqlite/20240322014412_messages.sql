-- SQLite mirror of the original history table (not partitioned; retention deletes by send_time).
CREATE TABLE IF NOT EXISTS messages
(
    send_id      TEXT    NOT NULL,
    receiver_id  TEXT    NOT NULL,
    local_id     TEXT    NOT NULL,
    server_id    TEXT    NOT NULL,
    send_time    INTEGER NOT NULL,
    msg_type     INTEGER,
    content_type INTEGER,
    content      BLOB,
    platform     INTEGER,
    PRIMARY KEY (send_id, server_id, send_time)
);
CREATE INDEX IF NOT EXISTS idx_messages_send_time ON messages (send_time);
