-- Original Sandcat schema (20240322014354_friends).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'friend_request_status') THEN
        CREATE TYPE friend_request_status AS ENUM ('Pending', 'Accepted', 'Rejected', 'Blacked', 'Deleted');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS friends
(
    id          BIGSERIAL PRIMARY KEY,
    fs_id       VARCHAR               NOT NULL,
    user_id     VARCHAR               NOT NULL,
    friend_id   VARCHAR               NOT NULL,
    status      friend_request_status NOT NULL DEFAULT 'Accepted',
    remark      VARCHAR,
    source      VARCHAR,
    create_time BIGINT                NOT NULL,
    update_time BIGINT                NOT NULL,
    UNIQUE (user_id, friend_id)
);
CREATE INDEX IF NOT EXISTS idx_friends_fs_id ON friends (fs_id);
