-- Original Sandcat schema (20240602023816_seq): durable ceilings of the per-user seq counters.
CREATE TABLE IF NOT EXISTS sequence
(
    user_id      VARCHAR PRIMARY KEY,
    send_max_seq BIGINT NOT NULL DEFAULT 0,
    rec_max_seq  BIGINT NOT NULL DEFAULT 0
);
