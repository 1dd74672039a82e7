-- Sandcat: Matrix appservice bridge state.
-- appservice_txns / appservice_events: processed homeserver transaction ids and
-- handled event ids (durable dedup of at-least-once delivery); times in unix ms.
CREATE TABLE IF NOT EXISTS appservice_txns
(
    txn_id  TEXT PRIMARY KEY,
    done_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_appservice_txns_done_at ON appservice_txns (done_at);
CREATE TABLE IF NOT EXISTS appservice_events
(
    event_id TEXT PRIMARY KEY,
    seen_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_appservice_events_seen_at ON appservice_events (seen_at);
-- matrix_puppets: Sandcat user <-> Matrix user (from_matrix: the Matrix side is the original).
CREATE TABLE IF NOT EXISTS matrix_puppets
(
    user_id     TEXT PRIMARY KEY,
    mxid        TEXT    NOT NULL UNIQUE,
    from_matrix INTEGER NOT NULL DEFAULT 0,
    registered  INTEGER NOT NULL DEFAULT 0,
    name        TEXT    NOT NULL DEFAULT '',
    avatar      TEXT    NOT NULL DEFAULT '',
    avatar_mxc  TEXT    NOT NULL DEFAULT '',
    update_time INTEGER NOT NULL
);
-- matrix_portals: Sandcat group <-> Matrix room.
CREATE TABLE IF NOT EXISTS matrix_portals
(
    group_id    TEXT PRIMARY KEY,
    room_id     TEXT    NOT NULL UNIQUE,
    alias       TEXT    NOT NULL DEFAULT '',
    plumbed     INTEGER NOT NULL DEFAULT 0,
    create_time INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_matrix_portals_alias ON matrix_portals (alias) WHERE alias <> '';
-- matrix_messages: Sandcat server_id <-> Matrix event id.
CREATE TABLE IF NOT EXISTS matrix_messages
(
    server_id   TEXT PRIMARY KEY,
    event_id    TEXT    NOT NULL UNIQUE,
    room_id     TEXT    NOT NULL,
    create_time INTEGER NOT NULL
);
