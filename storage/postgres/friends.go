package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Friends = (*Store)(nil)

// friendsQueryer is what *pgxpool.Pool and pgx.Tx share.
type friendsQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

type friendsRowScanner interface{ Scan(dest ...any) error }

const friendRequestCols = `id, user_id, friend_id, status::text, apply_msg, req_remark, resp_msg, resp_remark,
	COALESCE(source, ''), create_time, COALESCE(update_time, create_time)`

func scanFriendRequest(r friendsRowScanner) (storage.FriendRequest, error) {
	var fr storage.FriendRequest
	var status string
	if err := r.Scan(&fr.ID, &fr.UserID, &fr.FriendID, &status, &fr.ApplyMsg, &fr.ReqRemark,
		&fr.RespMsg, &fr.RespRemark, &fr.Source, &fr.CreateTime, &fr.UpdateTime); err != nil {
		return fr, err
	}
	st, err := storage.ParseFriendStatus(status)
	fr.Status = st
	return fr, err
}

// friendCols select a wire.Friend from friends f joined with users u (the friend).
const friendCols = `f.fs_id, f.friend_id, u.account, u.name, u.avatar, u.gender, u.age, u.region,
	f.status::text, f.remark, u.email, COALESCE(f.source, ''), COALESCE(u.signature, ''), f.create_time, f.update_time`

func scanFriend(r friendsRowScanner) (wire.Friend, error) {
	var f wire.Friend
	var status string
	if err := r.Scan(&f.FsID, &f.FriendID, &f.Account, &f.Name, &f.Avatar, &f.Gender, &f.Age, &f.Region,
		&status, &f.Remark, &f.Email, &f.Source, &f.Signature, &f.CreateTime, &f.UpdateTime); err != nil {
		return f, err
	}
	st, err := storage.ParseFriendStatus(status)
	f.Status = st
	return f, err
}

// requestWithUserCols select a wire.FriendshipWithUser from friendships fs
// joined with users u (the requester); remark and email stay null.
const requestWithUserCols = `fs.id, fs.user_id, u.name, u.avatar, u.gender, u.age, u.region, fs.status::text,
	fs.apply_msg, COALESCE(fs.source, ''), fs.create_time, u.account`

func scanRequestWithUser(r friendsRowScanner) (wire.FriendshipWithUser, error) {
	var f wire.FriendshipWithUser
	var status string
	if err := r.Scan(&f.FsID, &f.UserID, &f.Name, &f.Avatar, &f.Gender, &f.Age, &f.Region, &status,
		&f.ApplyMsg, &f.Source, &f.CreateTime, &f.Account); err != nil {
		return f, err
	}
	st, err := storage.ParseFriendStatus(status)
	f.Status = st
	return f, err
}

func friendsNotFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// RequestFriend implements storage.Friends.
func (s *Store) RequestFriend(ctx context.Context, r storage.NewFriendRequest) (storage.FriendRequest, error) {
	fr, err := scanFriendRequest(s.pool.QueryRow(ctx, `
		INSERT INTO friendships (id, user_id, friend_id, status, apply_msg, req_remark, source, create_time, update_time)
		VALUES ($1, $2, $3, 'Pending', $4, $5, $6, $7, $7)
		ON CONFLICT (user_id, friend_id) DO UPDATE SET
			status = 'Pending', apply_msg = EXCLUDED.apply_msg, req_remark = EXCLUDED.req_remark,
			resp_msg = NULL, resp_remark = NULL, source = EXCLUDED.source,
			create_time = EXCLUDED.create_time, update_time = EXCLUDED.update_time
		RETURNING `+friendRequestCols,
		ids.New(), r.UserID, r.FriendID, r.ApplyMsg, r.ReqRemark, r.Source, r.Time))
	if err != nil {
		return fr, fmt.Errorf("postgres: request friend: %w", err)
	}
	return fr, nil
}

// GetFriendRequest implements storage.Friends.
func (s *Store) GetFriendRequest(ctx context.Context, fsID string) (storage.FriendRequest, error) {
	return getFriendRequest(ctx, s.pool, fsID, "")
}

// getFriendRequest reads request fsID; lock is "" or a locking clause (FOR UPDATE).
func getFriendRequest(ctx context.Context, q friendsQueryer, fsID, lock string) (storage.FriendRequest, error) {
	fr, err := scanFriendRequest(q.QueryRow(ctx, `SELECT `+friendRequestCols+` FROM friendships WHERE id = $1 `+lock, fsID))
	if err != nil {
		return fr, fmt.Errorf("postgres: get friend request %s: %w", fsID, friendsNotFound(err))
	}
	return fr, nil
}

// friendsTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) friendsTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// AgreeFriendRequest implements storage.Friends.
func (s *Store) AgreeFriendRequest(ctx context.Context, fsID string, respMsg, respRemark *string, now int64) (storage.Agreement, error) {
	var a storage.Agreement
	err := s.friendsTx(ctx, func(tx pgx.Tx) error {
		fr, err := getFriendRequest(ctx, tx, fsID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if fr.Status != wire.FriendPending && fr.Status != wire.FriendAccepted {
			return fmt.Errorf("postgres: agree friend request %s in status %d: %w", fsID, fr.Status, storage.ErrConflict)
		}
		fr, err = scanFriendRequest(tx.QueryRow(ctx, `
			UPDATE friendships SET status = 'Accepted', update_time = $1, resp_msg = $2, resp_remark = $3
			WHERE id = $4 RETURNING `+friendRequestCols, now, respMsg, respRemark, fsID))
		if err != nil {
			return fmt.Errorf("postgres: agree friend request %s: %w", fsID, err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO friends (fs_id, user_id, friend_id, status, remark, source, create_time, update_time)
			VALUES ($1, $2, $3, 'Accepted', $4, $6, $7, $7), ($1, $3, $2, 'Accepted', $5, $6, $7, $7)
			ON CONFLICT (user_id, friend_id) DO UPDATE SET
				fs_id = EXCLUDED.fs_id, remark = EXCLUDED.remark, source = EXCLUDED.source,
				create_time = CASE WHEN friends.status = 'Accepted' THEN friends.create_time ELSE EXCLUDED.create_time END,
				status = 'Accepted', update_time = EXCLUDED.update_time`,
			fr.ID, fr.UserID, fr.FriendID, fr.ReqRemark, fr.RespRemark, fr.Source, now); err != nil {
			return fmt.Errorf("postgres: agree friend request %s: upsert friends: %w", fsID, err)
		}
		a.Request = fr
		if a.ForRequester, err = getFriend(ctx, tx, fr.UserID, fr.FriendID); err != nil {
			return err
		}
		if a.ForAgreer, err = getFriend(ctx, tx, fr.FriendID, fr.UserID); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return storage.Agreement{}, err
	}
	return a, nil
}

// RejectFriendRequest implements storage.Friends.
func (s *Store) RejectFriendRequest(ctx context.Context, fsID string, respMsg *string, now int64) (storage.FriendRequest, error) {
	var out storage.FriendRequest
	err := s.friendsTx(ctx, func(tx pgx.Tx) error {
		fr, err := getFriendRequest(ctx, tx, fsID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if fr.Status != wire.FriendPending && fr.Status != wire.FriendRejected {
			return fmt.Errorf("postgres: reject friend request %s in status %d: %w", fsID, fr.Status, storage.ErrConflict)
		}
		out, err = scanFriendRequest(tx.QueryRow(ctx, `
			UPDATE friendships SET status = 'Rejected', update_time = $1, resp_msg = $2
			WHERE id = $3 RETURNING `+friendRequestCols, now, respMsg, fsID))
		if err != nil {
			return fmt.Errorf("postgres: reject friend request %s: %w", fsID, err)
		}
		return nil
	})
	if err != nil {
		return storage.FriendRequest{}, err
	}
	return out, nil
}

// GetFriend implements storage.Friends.
func (s *Store) GetFriend(ctx context.Context, userID, friendID string) (wire.Friend, error) {
	return getFriend(ctx, s.pool, userID, friendID)
}

func getFriend(ctx context.Context, q friendsQueryer, userID, friendID string) (wire.Friend, error) {
	f, err := scanFriend(q.QueryRow(ctx, `SELECT `+friendCols+`
		FROM friends f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = $1 AND f.friend_id = $2 AND NOT u.is_delete`, userID, friendID))
	if err != nil {
		return f, fmt.Errorf("postgres: get friend %s of %s: %w", friendID, userID, friendsNotFound(err))
	}
	return f, nil
}

// ListFriendsSince implements storage.Friends.
func (s *Store) ListFriendsSince(ctx context.Context, userID string, since int64) ([]wire.Friend, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+friendCols+`
		FROM friends f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = $1 AND f.update_time > $2 AND NOT u.is_delete
		ORDER BY f.update_time, f.id`, userID, since)
	if err != nil {
		return nil, fmt.Errorf("postgres: list friends of %s: %w", userID, err)
	}
	defer rows.Close()
	out := []wire.Friend{}
	for rows.Next() {
		f, err := scanFriend(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list friends of %s: %w", userID, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list friends of %s: %w", userID, err)
	}
	return out, nil
}

// ListFriendRequestsSince implements storage.Friends.
func (s *Store) ListFriendRequestsSince(ctx context.Context, userID string, since int64) ([]wire.FriendshipWithUser, error) {
	return s.listFriendRequests(ctx, `fs.friend_id = $1 AND COALESCE(fs.update_time, fs.create_time) > $2`, userID, since)
}

// ListPendingFriendRequests implements storage.Friends.
func (s *Store) ListPendingFriendRequests(ctx context.Context, userID string) ([]wire.FriendshipWithUser, error) {
	return s.listFriendRequests(ctx, `fs.friend_id = $1 AND fs.status = 'Pending'`, userID)
}

func (s *Store) listFriendRequests(ctx context.Context, where string, args ...any) ([]wire.FriendshipWithUser, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+requestWithUserCols+`
		FROM friendships fs JOIN users u ON u.id = fs.user_id
		WHERE `+where+` AND NOT u.is_delete
		ORDER BY COALESCE(fs.update_time, fs.create_time), fs.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list friend requests: %w", err)
	}
	defer rows.Close()
	out := []wire.FriendshipWithUser{}
	for rows.Next() {
		f, err := scanRequestWithUser(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list friend requests: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list friend requests: %w", err)
	}
	return out, nil
}

// DeleteFriend implements storage.Friends.
func (s *Store) DeleteFriend(ctx context.Context, userID, friendID, fsID string, now int64) error {
	return s.friendsTx(ctx, func(tx pgx.Tx) error {
		fr, err := getFriendRequest(ctx, tx, fsID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if !(fr.UserID == userID && fr.FriendID == friendID) && !(fr.UserID == friendID && fr.FriendID == userID) {
			return fmt.Errorf("postgres: delete friend: %s is not between %s and %s: %w", fsID, userID, friendID, storage.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE friends SET status = 'Deleted', update_time = $1
			WHERE fs_id = $2 AND status <> 'Blacked'
			  AND ((user_id = $3 AND friend_id = $4) OR (user_id = $4 AND friend_id = $3))`,
			now, fsID, userID, friendID); err != nil {
			return fmt.Errorf("postgres: delete friend: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE friendships SET status = 'Deleted', update_time = $1 WHERE id = $2`, now, fsID); err != nil {
			return fmt.Errorf("postgres: delete friend: %w", err)
		}
		return nil
	})
}

// SetFriendRemark implements storage.Friends.
func (s *Store) SetFriendRemark(ctx context.Context, userID, friendID, remark string, now int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE friends SET remark = $1, update_time = $2 WHERE user_id = $3 AND friend_id = $4`,
		remark, now, userID, friendID)
	if err != nil {
		return fmt.Errorf("postgres: set friend remark: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set friend remark: no friend %s of %s: %w", friendID, userID, storage.ErrNotFound)
	}
	return nil
}

// BlockUser implements storage.Friends.
func (s *Store) BlockUser(ctx context.Context, by, whom string, now int64) error {
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO friends (fs_id, user_id, friend_id, status, create_time, update_time)
		VALUES ($1, $2, $3, 'Blacked', $4, $4)
		ON CONFLICT (user_id, friend_id) DO UPDATE SET status = 'Blacked', update_time = EXCLUDED.update_time`,
		ids.New(), by, whom, now); err != nil {
		return fmt.Errorf("postgres: block user: %w", err)
	}
	return nil
}

// UnblockUser implements storage.Friends.
func (s *Store) UnblockUser(ctx context.Context, by, whom string, now int64) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE friends SET update_time = $1,
			status = CASE WHEN EXISTS (SELECT 1 FROM friendships fs WHERE fs.id = friends.fs_id AND fs.status = 'Accepted')
				THEN 'Accepted'::friend_request_status ELSE 'Deleted'::friend_request_status END
		WHERE user_id = $2 AND friend_id = $3 AND status = 'Blacked'`, now, by, whom); err != nil {
		return fmt.Errorf("postgres: unblock user: %w", err)
	}
	return nil
}

// IsBlocked implements storage.Friends.
func (s *Store) IsBlocked(ctx context.Context, by, whom string) (bool, error) {
	var blocked bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM friends WHERE user_id = $1 AND friend_id = $2 AND status = 'Blacked')`,
		by, whom).Scan(&blocked); err != nil {
		return false, fmt.Errorf("postgres: is blocked: %w", err)
	}
	return blocked, nil
}

// AreFriends implements storage.Friends.
func (s *Store) AreFriends(ctx context.Context, a, b string) (bool, error) {
	if a == b {
		return false, nil
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM friends
		WHERE ((user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)) AND status = 'Accepted'`,
		a, b).Scan(&n); err != nil {
		return false, fmt.Errorf("postgres: are friends: %w", err)
	}
	return n == 2, nil
}
