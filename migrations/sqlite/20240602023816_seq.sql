-- SQLite mirror of the original sequence table (durable seq ceilings).
CREATE TABLE IF NOT EXISTS sequence
(
    user_id      TEXT PRIMARY KEY,
    send_max_seq INTEGER NOT NULL DEFAULT 0,
    rec_max_seq  INTEGER NOT NULL DEFAULT 0
);
