-- Original Sandcat schema (20240322014403_friendships).
CREATE TABLE IF NOT EXISTS friendships
(
    id          VARCHAR PRIMARY KEY,
    user_id     VARCHAR               NOT NULL,
    friend_id   VARCHAR               NOT NULL,
    status      friend_request_status NOT NULL DEFAULT 'Pending',
    apply_msg   VARCHAR,
    req_remark  VARCHAR,
    resp_msg    VARCHAR,
    resp_remark VARCHAR,
    source      VARCHAR,
    create_time BIGINT                NOT NULL,
    update_time BIGINT,
    UNIQUE (user_id, friend_id)
);
