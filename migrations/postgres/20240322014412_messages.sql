-- Original Sandcat schema (20240322014412_messages): history, partitioned weekly by send_time (ms).
CREATE TABLE IF NOT EXISTS messages
(
    send_id      VARCHAR NOT NULL,
    receiver_id  VARCHAR NOT NULL,
    local_id     VARCHAR NOT NULL,
    server_id    VARCHAR NOT NULL,
    send_time    BIGINT  NOT NULL,
    msg_type     INT,
    content_type INT,
    content      BYTEA,
    platform     INT,
    PRIMARY KEY (send_id, server_id, send_time)
) PARTITION BY RANGE (send_time);

-- 52 weekly partitions from the current week, as the original did. The history store's
-- maintenance creates partitions ahead of time from then on (bug B4 of the original).
DO $$
DECLARE
    week_start TIMESTAMPTZ := date_trunc('week', now());
    i          INT;
    part_start TIMESTAMPTZ;
    part_end   TIMESTAMPTZ;
BEGIN
    FOR i IN 0..51 LOOP
        part_start := week_start + (i || ' week')::INTERVAL;
        part_end := part_start + INTERVAL '1 week';
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF messages FOR VALUES FROM (%s) TO (%s)',
                       'messages_' || to_char(part_start, 'IYYY_IW'),
                       (extract(epoch FROM part_start) * 1000)::BIGINT,
                       (extract(epoch FROM part_end) * 1000)::BIGINT);
    END LOOP;
END
$$;
