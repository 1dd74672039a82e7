package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Friends = (*Store)(nil)

// friendsQueryer is what *sql.DB and *sql.Tx share.
type friendsQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type friendsRowScanner interface{ Scan(dest ...any) error }

const friendRequestCols = `id, user_id, friend_id, status, apply_msg, req_remark, resp_msg, resp_remark,
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
	f.status, f.remark, u.email, COALESCE(f.source, ''), COALESCE(u.signature, ''), f.create_time, f.update_time`

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
const requestWithUserCols = `fs.id, fs.user_id, u.name, u.avatar, u.gender, u.age, u.region, fs.status,
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
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// RequestFriend implements storage.Friends.
func (s *Store) RequestFriend(ctx context.Context, r storage.NewFriendRequest) (storage.FriendRequest, error) {
	fr, err := scanFriendRequest(s.db.QueryRowContext(ctx, `
		INSERT INTO friendships (id, user_id, friend_id, status, apply_msg, req_remark, source, create_time, update_time)
		VALUES (?, ?, ?, 'Pending', ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, friend_id) DO UPDATE SET
			status = 'Pending', apply_msg = excluded.apply_msg, req_remark = excluded.req_remark,
			resp_msg = NULL, resp_remark = NULL, source = excluded.source,
			create_time = excluded.create_time, update_time = excluded.update_time
		RETURNING `+friendRequestCols,
		ids.New(), r.UserID, r.FriendID, r.ApplyMsg, r.ReqRemark, r.Source, r.Time, r.Time))
	if err != nil {
		return fr, fmt.Errorf("sqlite: request friend: %w", err)
	}
	return fr, nil
}

// GetFriendRequest implements storage.Friends.
func (s *Store) GetFriendRequest(ctx context.Context, fsID string) (storage.FriendRequest, error) {
	return getFriendRequest(ctx, s.db, fsID)
}

func getFriendRequest(ctx context.Context, q friendsQueryer, fsID string) (storage.FriendRequest, error) {
	fr, err := scanFriendRequest(q.QueryRowContext(ctx, `SELECT `+friendRequestCols+` FROM friendships WHERE id = ?`, fsID))
	if err != nil {
		return fr, fmt.Errorf("sqlite: get friend request %s: %w", fsID, friendsNotFound(err))
	}
	return fr, nil
}

// AgreeFriendRequest implements storage.Friends.
func (s *Store) AgreeFriendRequest(ctx context.Context, fsID string, respMsg, respRemark *string, now int64) (storage.Agreement, error) {
	var a storage.Agreement
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return a, fmt.Errorf("sqlite: agree friend request: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	fr, err := getFriendRequest(ctx, tx, fsID)
	if err != nil {
		return a, err
	}
	if fr.Status != wire.FriendPending && fr.Status != wire.FriendAccepted {
		return a, fmt.Errorf("sqlite: agree friend request %s in status %d: %w", fsID, fr.Status, storage.ErrConflict)
	}
	fr, err = scanFriendRequest(tx.QueryRowContext(ctx, `
		UPDATE friendships SET status = 'Accepted', update_time = ?, resp_msg = ?, resp_remark = ?
		WHERE id = ? RETURNING `+friendRequestCols, now, respMsg, respRemark, fsID))
	if err != nil {
		return a, fmt.Errorf("sqlite: agree friend request %s: %w", fsID, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO friends (fs_id, user_id, friend_id, status, remark, source, create_time, update_time)
		VALUES (?1, ?2, ?3, 'Accepted', ?4, ?6, ?7, ?7), (?1, ?3, ?2, 'Accepted', ?5, ?6, ?7, ?7)
		ON CONFLICT (user_id, friend_id) DO UPDATE SET
			fs_id = excluded.fs_id, remark = excluded.remark, source = excluded.source,
			create_time = CASE WHEN friends.status = 'Accepted' THEN friends.create_time ELSE excluded.create_time END,
			status = 'Accepted', update_time = excluded.update_time`,
		fr.ID, fr.UserID, fr.FriendID, fr.ReqRemark, fr.RespRemark, fr.Source, now); err != nil {
		return a, fmt.Errorf("sqlite: agree friend request %s: upsert friends: %w", fsID, err)
	}
	a.Request = fr
	if a.ForRequester, err = getFriend(ctx, tx, fr.UserID, fr.FriendID); err != nil {
		return a, err
	}
	if a.ForAgreer, err = getFriend(ctx, tx, fr.FriendID, fr.UserID); err != nil {
		return a, err
	}
	if err := tx.Commit(); err != nil {
		return a, fmt.Errorf("sqlite: agree friend request %s: %w", fsID, err)
	}
	return a, nil
}

// RejectFriendRequest implements storage.Friends.
func (s *Store) RejectFriendRequest(ctx context.Context, fsID string, respMsg *string, now int64) (storage.FriendRequest, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return storage.FriendRequest{}, fmt.Errorf("sqlite: reject friend request: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	fr, err := getFriendRequest(ctx, tx, fsID)
	if err != nil {
		return fr, err
	}
	if fr.Status != wire.FriendPending && fr.Status != wire.FriendRejected {
		return fr, fmt.Errorf("sqlite: reject friend request %s in status %d: %w", fsID, fr.Status, storage.ErrConflict)
	}
	fr, err = scanFriendRequest(tx.QueryRowContext(ctx, `
		UPDATE friendships SET status = 'Rejected', update_time = ?, resp_msg = ?
		WHERE id = ? RETURNING `+friendRequestCols, now, respMsg, fsID))
	if err != nil {
		return fr, fmt.Errorf("sqlite: reject friend request %s: %w", fsID, err)
	}
	if err := tx.Commit(); err != nil {
		return fr, fmt.Errorf("sqlite: reject friend request %s: %w", fsID, err)
	}
	return fr, nil
}

// GetFriend implements storage.Friends.
func (s *Store) GetFriend(ctx context.Context, userID, friendID string) (wire.Friend, error) {
	return getFriend(ctx, s.db, userID, friendID)
}

func getFriend(ctx context.Context, q friendsQueryer, userID, friendID string) (wire.Friend, error) {
	f, err := scanFriend(q.QueryRowContext(ctx, `SELECT `+friendCols+`
		FROM friends f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = ? AND f.friend_id = ? AND u.is_delete = 0`, userID, friendID))
	if err != nil {
		return f, fmt.Errorf("sqlite: get friend %s of %s: %w", friendID, userID, friendsNotFound(err))
	}
	return f, nil
}

// ListFriendsSince implements storage.Friends.
func (s *Store) ListFriendsSince(ctx context.Context, userID string, since int64) ([]wire.Friend, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+friendCols+`
		FROM friends f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = ? AND f.update_time > ? AND u.is_delete = 0
		ORDER BY f.update_time, f.id`, userID, since)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list friends of %s: %w", userID, err)
	}
	defer rows.Close()
	out := []wire.Friend{}
	for rows.Next() {
		f, err := scanFriend(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list friends of %s: %w", userID, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list friends of %s: %w", userID, err)
	}
	return out, nil
}

// ListFriendRequestsSince implements storage.Friends.
func (s *Store) ListFriendRequestsSince(ctx context.Context, userID string, since int64) ([]wire.FriendshipWithUser, error) {
	return s.listRequests(ctx, `fs.friend_id = ? AND COALESCE(fs.update_time, fs.create_time) > ?`, userID, since)
}

// ListPendingFriendRequests implements storage.Friends.
func (s *Store) ListPendingFriendRequests(ctx context.Context, userID string) ([]wire.FriendshipWithUser, error) {
	return s.listRequests(ctx, `fs.friend_id = ? AND fs.status = 'Pending'`, userID)
}

func (s *Store) listRequests(ctx context.Context, where string, args ...any) ([]wire.FriendshipWithUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+requestWithUserCols+`
		FROM friendships fs JOIN users u ON u.id = fs.user_id
		WHERE `+where+` AND u.is_delete = 0
		ORDER BY COALESCE(fs.update_time, fs.create_time), fs.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list friend requests: %w", err)
	}
	defer rows.Close()
	out := []wire.FriendshipWithUser{}
	for rows.Next() {
		f, err := scanRequestWithUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list friend requests: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list friend requests: %w", err)
	}
	return out, nil
}

// DeleteFriend implements storage.Friends.
func (s *Store) DeleteFriend(ctx context.Context, userID, friendID, fsID string, now int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete friend: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	fr, err := getFriendRequest(ctx, tx, fsID)
	if err != nil {
		return err
	}
	if !(fr.UserID == userID && fr.FriendID == friendID) && !(fr.UserID == friendID && fr.FriendID == userID) {
		return fmt.Errorf("sqlite: delete friend: %s is not between %s and %s: %w", fsID, userID, friendID, storage.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE friends SET status = 'Deleted', update_time = ?1
		WHERE fs_id = ?2 AND status <> 'Blacked'
		  AND ((user_id = ?3 AND friend_id = ?4) OR (user_id = ?4 AND friend_id = ?3))`,
		now, fsID, userID, friendID); err != nil {
		return fmt.Errorf("sqlite: delete friend: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE friendships SET status = 'Deleted', update_time = ? WHERE id = ?`, now, fsID); err != nil {
		return fmt.Errorf("sqlite: delete friend: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete friend: %w", err)
	}
	return nil
}

// SetFriendRemark implements storage.Friends.
func (s *Store) SetFriendRemark(ctx context.Context, userID, friendID, remark string, now int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE friends SET remark = ?, update_time = ? WHERE user_id = ? AND friend_id = ?`,
		remark, now, userID, friendID)
	if err != nil {
		return fmt.Errorf("sqlite: set friend remark: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: set friend remark: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: set friend remark: no friend %s of %s: %w", friendID, userID, storage.ErrNotFound)
	}
	return nil
}

// BlockUser implements storage.Friends.
func (s *Store) BlockUser(ctx context.Context, by, whom string, now int64) error {
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO friends (fs_id, user_id, friend_id, status, create_time, update_time)
		VALUES (?, ?, ?, 'Blacked', ?, ?)
		ON CONFLICT (user_id, friend_id) DO UPDATE SET status = 'Blacked', update_time = excluded.update_time`,
		ids.New(), by, whom, now, now); err != nil {
		return fmt.Errorf("sqlite: block user: %w", err)
	}
	return nil
}

// UnblockUser implements storage.Friends.
func (s *Store) UnblockUser(ctx context.Context, by, whom string, now int64) error {
	if _, err := s.db.ExecContext(ctx, `
		UPDATE friends SET update_time = ?,
			status = CASE WHEN EXISTS (SELECT 1 FROM friendships fs WHERE fs.id = friends.fs_id AND fs.status = 'Accepted')
				THEN 'Accepted' ELSE 'Deleted' END
		WHERE user_id = ? AND friend_id = ? AND status = 'Blacked'`, now, by, whom); err != nil {
		return fmt.Errorf("sqlite: unblock user: %w", err)
	}
	return nil
}

// IsBlocked implements storage.Friends.
func (s *Store) IsBlocked(ctx context.Context, by, whom string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM friends WHERE user_id = ? AND friend_id = ? AND status = 'Blacked'`,
		by, whom).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: is blocked: %w", err)
	}
	return n > 0, nil
}

// AreFriends implements storage.Friends.
func (s *Store) AreFriends(ctx context.Context, a, b string) (bool, error) {
	if a == b {
		return false, nil
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM friends
		WHERE ((user_id = ?1 AND friend_id = ?2) OR (user_id = ?2 AND friend_id = ?1)) AND status = 'Accepted'`,
		a, b).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: are friends: %w", err)
	}
	return n == 2, nil
}
