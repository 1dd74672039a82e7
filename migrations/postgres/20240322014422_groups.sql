-- Original Sandcat schema (20240322014422_groups).
CREATE TABLE IF NOT EXISTS groups
(
    id           VARCHAR PRIMARY KEY,
    owner        VARCHAR(256) NOT NULL,
    name         VARCHAR(256) NOT NULL,
    avatar       TEXT         NOT NULL,
    description  TEXT         NOT NULL DEFAULT '',
    announcement TEXT         NOT NULL DEFAULT '',
    create_time  BIGINT       NOT NULL,
    update_time  BIGINT       NOT NULL
);
