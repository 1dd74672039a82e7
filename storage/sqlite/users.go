package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sandcat-im/sandcat/storage"
	msqlite "modernc.org/sqlite"
)

var _ storage.Users = (*Store)(nil)

// userColumns is the column list scanned by scanUser, in that order.
const userColumns = `id, name, account, password, salt, avatar, gender, age, phone, email, address, region,
	birthday, create_time, update_time, COALESCE(signature, ''), is_delete`

func scanUserRow(row interface{ Scan(dest ...any) error }) (*storage.User, error) {
	var u storage.User
	err := row.Scan(&u.ID, &u.Name, &u.Account, &u.Password, &u.Salt, &u.Avatar, &u.Gender, &u.Age,
		&u.Phone, &u.Email, &u.Address, &u.Region, &u.Birthday, &u.CreateTime, &u.UpdateTime,
		&u.Signature, &u.IsDelete)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// isUserConstraintErr reports a SQLite constraint violation (primary code SQLITE_CONSTRAINT).
func isUserConstraintErr(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == 19
}

// CreateUser implements storage.Users. The immediate transaction holds the
// write lock from its start, so the uniqueness check cannot race another insert.
func (s *Store) CreateUser(ctx context.Context, u *storage.User, seqStep int64) error {
	now := time.Now().UnixMilli()
	if u.CreateTime == 0 {
		u.CreateTime = now
	}
	if u.UpdateTime == 0 {
		u.UpdateTime = u.CreateTime
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var used int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE is_delete = 0
		AND (account = ? OR (? IS NOT NULL AND email = ?))`, u.Account, u.Email, u.Email).Scan(&used); err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	if used > 0 {
		return storage.ErrConflict
	}
	var sig *string
	if u.Signature != "" {
		sig = &u.Signature
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO users (id, name, account, password, salt, signature, avatar, gender, age,
		phone, email, address, region, birthday, create_time, update_time, is_delete)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		u.ID, u.Name, u.Account, u.Password, u.Salt, sig, u.Avatar, u.Gender, u.Age,
		u.Phone, u.Email, u.Address, u.Region, u.Birthday, u.CreateTime, u.UpdateTime)
	if isUserConstraintErr(err) {
		return storage.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sequence (user_id, send_max_seq, rec_max_seq) VALUES (?, ?, ?)`,
		u.ID, seqStep, seqStep); err != nil {
		if isUserConstraintErr(err) {
			return storage.ErrConflict
		}
		return fmt.Errorf("sqlite: create user sequence: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	return nil
}

func (s *Store) userWhere(ctx context.Context, op, where string, args ...any) (*storage.User, error) {
	u, err := scanUserRow(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE is_delete = 0 AND `+where, args...))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return u, err
}

// GetUser implements storage.Users.
func (s *Store) GetUser(ctx context.Context, id string) (*storage.User, error) {
	return s.userWhere(ctx, "get user", `id = ?`, id)
}

// UserByLogin implements storage.Users.
func (s *Store) UserByLogin(ctx context.Context, login string) (*storage.User, error) {
	return s.userWhere(ctx, "user by login", `(account = ?1 OR phone = ?1 OR email = ?1)
		ORDER BY (account = ?1) DESC, (email IS NOT NULL AND email = ?1) DESC, create_time, id LIMIT 1`, login)
}

// UserByEmail implements storage.Users.
func (s *Store) UserByEmail(ctx context.Context, email string) (*storage.User, error) {
	return s.userWhere(ctx, "user by email", `email = ? ORDER BY create_time, id LIMIT 1`, email)
}

// UpdateUser implements storage.Users.
func (s *Store) UpdateUser(ctx context.Context, u *storage.UserUpdate, now int64) (*storage.User, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: update user: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if u.Email != nil && *u.Email != "" {
		var used int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE is_delete = 0 AND email = ? AND id <> ?`,
			*u.Email, u.ID).Scan(&used); err != nil {
			return nil, fmt.Errorf("sqlite: update user: %w", err)
		}
		if used > 0 {
			return nil, storage.ErrConflict
		}
	}
	out, err := scanUserRow(tx.QueryRowContext(ctx, `UPDATE users SET
		name = COALESCE(NULLIF(?, ''), name),
		avatar = COALESCE(NULLIF(?, ''), avatar),
		gender = COALESCE(NULLIF(?, ''), gender),
		phone = COALESCE(NULLIF(?, ''), phone),
		email = COALESCE(NULLIF(?, ''), email),
		address = COALESCE(NULLIF(?, ''), address),
		region = COALESCE(NULLIF(?, ''), region),
		birthday = COALESCE(NULLIF(?, 0), birthday),
		signature = COALESCE(NULLIF(?, ''), signature),
		update_time = ?
		WHERE id = ? AND is_delete = 0
		RETURNING `+userColumns,
		u.Name, u.Avatar, u.Gender, u.Phone, u.Email, u.Address, u.Region, u.Birthday, u.Signature, now, u.ID))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("sqlite: update user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: update user: %w", err)
	}
	return out, nil
}

// SetUserPassword implements storage.Users.
func (s *Store) SetUserPassword(ctx context.Context, id, hash, salt string) error {
	return s.userExecOne(ctx, "set user password", `UPDATE users SET password = ?, salt = ?, update_time = ?
		WHERE id = ? AND is_delete = 0`, hash, salt, time.Now().UnixMilli(), id)
}

// SetUserRegion implements storage.Users.
func (s *Store) SetUserRegion(ctx context.Context, id, region string) error {
	return s.userExecOne(ctx, "set user region", `UPDATE users SET region = ? WHERE id = ? AND is_delete = 0`, region, id)
}

func (s *Store) userExecOne(ctx context.Context, op, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// SearchUser implements storage.Users.
func (s *Store) SearchUser(ctx context.Context, callerID, pattern string) (*storage.UserWithMatchType, error) {
	var u storage.UserWithMatchType
	var match string
	err := s.db.QueryRowContext(ctx, `SELECT id, name, account, avatar, gender, age, email, region, birthday,
		COALESCE(signature, ''),
		CASE WHEN phone = ?1 THEN 'phone' WHEN email = ?1 THEN 'email' ELSE 'account' END
		FROM users WHERE (email = ?1 OR phone = ?1 OR account = ?1) AND id <> ?2 AND is_delete = 0
		ORDER BY create_time, id LIMIT 1`, pattern, callerID).
		Scan(&u.ID, &u.Name, &u.Account, &u.Avatar, &u.Gender, &u.Age, &u.Email, &u.Region, &u.Birthday,
			&u.Signature, &match)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: search user: %w", err)
	}
	u.MatchType = &match
	return &u, nil
}

// RevokeTokens implements storage.Users.
func (s *Store) RevokeTokens(ctx context.Context, userID string, at int64) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO token_revocations (user_id, revoked_at) VALUES (?, ?)
		ON CONFLICT (user_id) DO UPDATE SET revoked_at = MAX(revoked_at, excluded.revoked_at)`, userID, at); err != nil {
		return fmt.Errorf("sqlite: revoke tokens: %w", err)
	}
	return nil
}

// TokensRevokedAt implements storage.Users.
func (s *Store) TokensRevokedAt(ctx context.Context, userID string) (int64, error) {
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT revoked_at FROM token_revocations WHERE user_id = ?`, userID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: tokens revoked at: %w", err)
	}
	return at, nil
}
