-- Incoming friend requests are read by target (friend sync, GET /friend/{id}/apply);
-- the original schema only indexed friendships by (user_id, friend_id). SQLite has this index already.
CREATE INDEX IF NOT EXISTS idx_friendships_friend_id ON friendships (friend_id);
