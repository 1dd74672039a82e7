-- Original Sandcat schema (sqlx migration 20240322014338_users), kept so an existing database keeps working.
CREATE TABLE IF NOT EXISTS users
(
    id          VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    account     VARCHAR NOT NULL,
    password    VARCHAR NOT NULL,
    salt        VARCHAR NOT NULL,
    signature   VARCHAR(1024),
    avatar      VARCHAR NOT NULL,
    gender      VARCHAR NOT NULL,
    age         INT     NOT NULL DEFAULT 0,
    phone       VARCHAR(20),
    email       VARCHAR(64),
    address     VARCHAR(1024),
    region      VARCHAR(1024),
    birthday    BIGINT,
    create_time BIGINT  NOT NULL,
    update_time BIGINT  NOT NULL,
    is_delete   BOOLEAN NOT NULL DEFAULT FALSE
);
