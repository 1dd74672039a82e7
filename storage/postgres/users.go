package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Users = (*Store)(nil)

// userIdentityLock is the advisory transaction lock that serialises the
// uniqueness checks of account and e-mail (the original schema has no unique
// constraints, and existing databases may hold duplicates, so none is added).
const userIdentityLock = 0x5a4dca8

// userColumns is the column list scanned by scanUserRow, in that order.
const userColumns = `id, name, account, password, salt, avatar, gender, age, phone, email, address, region,
	birthday, create_time, update_time, COALESCE(signature, ''), is_delete`

func scanUserRow(row pgx.Row) (*storage.User, error) {
	var u storage.User
	err := row.Scan(&u.ID, &u.Name, &u.Account, &u.Password, &u.Salt, &u.Avatar, &u.Gender, &u.Age,
		&u.Phone, &u.Email, &u.Address, &u.Region, &u.Birthday, &u.CreateTime, &u.UpdateTime,
		&u.Signature, &u.IsDelete)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func isUserUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, u *storage.User, seqStep int64) error {
	now := time.Now().UnixMilli()
	if u.CreateTime == 0 {
		u.CreateTime = now
	}
	if u.UpdateTime == 0 {
		u.UpdateTime = u.CreateTime
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, userIdentityLock); err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	var used bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE NOT is_delete
		AND (account = $1 OR ($2::varchar IS NOT NULL AND email = $2::varchar)))`, u.Account, u.Email).Scan(&used); err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	if used {
		return storage.ErrConflict
	}
	var sig *string
	if u.Signature != "" {
		sig = &u.Signature
	}
	_, err = tx.Exec(ctx, `INSERT INTO users (id, name, account, password, salt, signature, avatar, gender, age,
		phone, email, address, region, birthday, create_time, update_time, is_delete)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, FALSE)`,
		u.ID, u.Name, u.Account, u.Password, u.Salt, sig, u.Avatar, u.Gender, u.Age,
		u.Phone, u.Email, u.Address, u.Region, u.Birthday, u.CreateTime, u.UpdateTime)
	if isUserUniqueViolation(err) {
		return storage.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sequence (user_id, send_max_seq, rec_max_seq) VALUES ($1, $2, $2)`,
		u.ID, seqStep); err != nil {
		if isUserUniqueViolation(err) {
			return storage.ErrConflict
		}
		return fmt.Errorf("postgres: create user sequence: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	return nil
}

func (s *Store) userWhere(ctx context.Context, op, where string, args ...any) (*storage.User, error) {
	u, err := scanUserRow(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE NOT is_delete AND `+where, args...))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	return u, err
}

// GetUser implements storage.Users.
func (s *Store) GetUser(ctx context.Context, id string) (*storage.User, error) {
	return s.userWhere(ctx, "get user", `id = $1`, id)
}

// UserByLogin implements storage.Users.
func (s *Store) UserByLogin(ctx context.Context, login string) (*storage.User, error) {
	return s.userWhere(ctx, "user by login", `(account = $1 OR phone = $1 OR email = $1)
		ORDER BY (account = $1) DESC, (email IS NOT NULL AND email = $1) DESC, create_time, id LIMIT 1`, login)
}

// UserByEmail implements storage.Users.
func (s *Store) UserByEmail(ctx context.Context, email string) (*storage.User, error) {
	return s.userWhere(ctx, "user by email", `email = $1 ORDER BY create_time, id LIMIT 1`, email)
}

// UpdateUser implements storage.Users.
func (s *Store) UpdateUser(ctx context.Context, u *storage.UserUpdate, now int64) (*storage.User, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: update user: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if u.Email != nil && *u.Email != "" {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, userIdentityLock); err != nil {
			return nil, fmt.Errorf("postgres: update user: %w", err)
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE NOT is_delete AND email = $1 AND id <> $2)`,
			*u.Email, u.ID).Scan(&used); err != nil {
			return nil, fmt.Errorf("postgres: update user: %w", err)
		}
		if used {
			return nil, storage.ErrConflict
		}
	}
	out, err := scanUserRow(tx.QueryRow(ctx, `UPDATE users SET
		name = COALESCE(NULLIF($2::varchar, ''), name),
		avatar = COALESCE(NULLIF($3::varchar, ''), avatar),
		gender = COALESCE(NULLIF($4::varchar, ''), gender),
		phone = COALESCE(NULLIF($5::varchar, ''), phone),
		email = COALESCE(NULLIF($6::varchar, ''), email),
		address = COALESCE(NULLIF($7::varchar, ''), address),
		region = COALESCE(NULLIF($8::varchar, ''), region),
		birthday = COALESCE(NULLIF($9::bigint, 0), birthday),
		signature = COALESCE(NULLIF($10::varchar, ''), signature),
		update_time = $11
		WHERE id = $1 AND NOT is_delete
		RETURNING `+userColumns,
		u.ID, u.Name, u.Avatar, u.Gender, u.Phone, u.Email, u.Address, u.Region, u.Birthday, u.Signature, now))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: update user: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: update user: %w", err)
	}
	return out, nil
}

// SetUserPassword implements storage.Users.
func (s *Store) SetUserPassword(ctx context.Context, id, hash, salt string) error {
	return s.userExecOne(ctx, "set user password", `UPDATE users SET password = $2, salt = $3, update_time = $4
		WHERE id = $1 AND NOT is_delete`, id, hash, salt, time.Now().UnixMilli())
}

// SetUserRegion implements storage.Users.
func (s *Store) SetUserRegion(ctx context.Context, id, region string) error {
	return s.userExecOne(ctx, "set user region", `UPDATE users SET region = $2 WHERE id = $1 AND NOT is_delete`, id, region)
}

func (s *Store) userExecOne(ctx context.Context, op, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// SearchUser implements storage.Users.
func (s *Store) SearchUser(ctx context.Context, callerID, pattern string) (*storage.UserWithMatchType, error) {
	var u storage.UserWithMatchType
	var match string
	err := s.pool.QueryRow(ctx, `SELECT id, name, account, avatar, gender, age, email, region, birthday,
		COALESCE(signature, ''),
		CASE WHEN phone = $1 THEN 'phone' WHEN email = $1 THEN 'email' ELSE 'account' END
		FROM users WHERE (email = $1 OR phone = $1 OR account = $1) AND id <> $2 AND NOT is_delete
		ORDER BY create_time, id LIMIT 1`, pattern, callerID).
		Scan(&u.ID, &u.Name, &u.Account, &u.Avatar, &u.Gender, &u.Age, &u.Email, &u.Region, &u.Birthday,
			&u.Signature, &match)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: search user: %w", err)
	}
	u.MatchType = &match
	return &u, nil
}

// RevokeTokens implements storage.Users.
func (s *Store) RevokeTokens(ctx context.Context, userID string, at int64) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO token_revocations (user_id, revoked_at) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE
		SET revoked_at = GREATEST(token_revocations.revoked_at, EXCLUDED.revoked_at)`, userID, at); err != nil {
		return fmt.Errorf("postgres: revoke tokens: %w", err)
	}
	return nil
}

// TokensRevokedAt implements storage.Users.
func (s *Store) TokensRevokedAt(ctx context.Context, userID string) (int64, error) {
	var at int64
	err := s.pool.QueryRow(ctx, `SELECT revoked_at FROM token_revocations WHERE user_id = $1`, userID).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: tokens revoked at: %w", err)
	}
	return at, nil
}
