-- Original Sandcat schema (20240322014431_group_members).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'group_role') THEN
        CREATE TYPE group_role AS ENUM ('Owner', 'Admin', 'Member');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS group_members
(
    group_id     VARCHAR    NOT NULL,
    user_id      VARCHAR    NOT NULL,
    group_name   VARCHAR(128),
    group_remark VARCHAR(128),
    role         group_role NOT NULL DEFAULT 'Member',
    joined_at    BIGINT     NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS idx_group_members_group_id ON group_members (group_id);
CREATE INDEX IF NOT EXISTS idx_group_members_user_id ON group_members (user_id);
