-- SQLite mirror of the original groups table.
CREATE TABLE IF NOT EXISTS groups
(
    id           TEXT PRIMARY KEY,
    owner        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    avatar       TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    announcement TEXT    NOT NULL DEFAULT '',
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL
);
