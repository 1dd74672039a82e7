package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Groups = (*Store)(nil)

// groupQueryer is what *pgxpool.Pool and pgx.Tx share.
type groupQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const (
	groupColumns = `g.id, g.owner, g.name, g.avatar, g.description, g.announcement, g.create_time, g.update_time`

	// The enum group_role sorts as declared: Owner < Admin < Member, the wire's order.
	groupMemberSelect = `SELECT gm.group_id, gm.user_id, COALESCE(u.name, ''), COALESCE(u.avatar, ''), gm.joined_at,
		u.region, COALESCE(u.gender, ''), COALESCE(u.signature, ''), COALESCE(u.age, 0), gm.role::text
		FROM group_members gm LEFT JOIN users u ON u.id = gm.user_id`

	groupMemberOrder = ` ORDER BY gm.role, gm.joined_at, gm.user_id`
)

// groupTx runs fn in a transaction, committed if fn returns nil.
func (s *Store) groupTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// CreateGroup implements storage.Groups.
func (s *Store) CreateGroup(ctx context.Context, info wire.GroupInfo, memberIDs []string) (wire.GroupInfo, []wire.GroupMember, error) {
	now := time.Now().UnixMilli()
	if info.CreateTime == 0 {
		info.CreateTime = now
	}
	if info.UpdateTime == 0 {
		info.UpdateTime = info.CreateTime
	}
	ids := storage.DistinctMemberIDs(append([]string{info.Owner}, memberIDs...))
	var members []wire.GroupMember
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE id = $1 AND NOT is_delete`, info.Owner).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("owner %q: %w", info.Owner, storage.ErrNotFound)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO groups (id, owner, name, avatar, description, announcement, create_time, update_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			info.ID, info.Owner, info.Name, info.Avatar, info.Description, info.Announcement, info.CreateTime, info.UpdateTime)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("group %q: %w", info.ID, storage.ErrConflict)
		}
		// Rows left by a group of the same id that was never cleaned up are not members of this one.
		if _, err := tx.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1`, info.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, user_id, role, joined_at)
			SELECT $1, u.id, (CASE WHEN u.id = $2 THEN 'Owner' ELSE 'Member' END)::group_role, $3
			FROM users u WHERE u.id = ANY($4::text[]) AND NOT u.is_delete`,
			info.ID, info.Owner, info.CreateTime, ids); err != nil {
			return fmt.Errorf("members: %w", err)
		}
		members, err = groupQueryMembers(ctx, tx, groupMemberSelect+` WHERE gm.group_id = $1`+groupMemberOrder, info.ID)
		return err
	})
	if err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("postgres: create group: %w", err)
	}
	return info, members, nil
}

// GetGroup implements storage.Groups.
func (s *Store) GetGroup(ctx context.Context, groupID string) (wire.GroupInfo, error) {
	g, err := groupByID(ctx, s.pool, groupID, false)
	if err != nil {
		return wire.GroupInfo{}, fmt.Errorf("postgres: get group: %w", err)
	}
	return g, nil
}

func groupByID(ctx context.Context, q groupQueryer, groupID string, forUpdate bool) (wire.GroupInfo, error) {
	query := `SELECT ` + groupColumns + ` FROM groups g WHERE g.id = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	var g wire.GroupInfo
	err := q.QueryRow(ctx, query, groupID).
		Scan(&g.ID, &g.Owner, &g.Name, &g.Avatar, &g.Description, &g.Announcement, &g.CreateTime, &g.UpdateTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.GroupInfo{}, fmt.Errorf("group %q: %w", groupID, storage.ErrNotFound)
	}
	return g, err
}

// UserGroups implements storage.Groups.
func (s *Store) UserGroups(ctx context.Context, userID string) ([]wire.GroupInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+groupColumns+` FROM groups g
		JOIN group_members gm ON gm.group_id = g.id WHERE gm.user_id = $1 ORDER BY g.create_time, g.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: user groups: %w", err)
	}
	defer rows.Close()
	out := []wire.GroupInfo{}
	for rows.Next() {
		var g wire.GroupInfo
		if err := rows.Scan(&g.ID, &g.Owner, &g.Name, &g.Avatar, &g.Description, &g.Announcement, &g.CreateTime, &g.UpdateTime); err != nil {
			return nil, fmt.Errorf("postgres: user groups: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: user groups: %w", err)
	}
	return out, nil
}

// GroupMembers implements storage.Groups.
func (s *Store) GroupMembers(ctx context.Context, groupID string) ([]wire.GroupMember, error) {
	m, err := groupQueryMembers(ctx, s.pool, groupMemberSelect+` WHERE gm.group_id = $1`+groupMemberOrder, groupID)
	if err != nil {
		return nil, fmt.Errorf("postgres: group members: %w", err)
	}
	return m, nil
}

// GroupMembersByID implements storage.Groups.
func (s *Store) GroupMembersByID(ctx context.Context, groupID string, userIDs []string) ([]wire.GroupMember, error) {
	m, err := groupQueryMembers(ctx, s.pool, groupMemberSelect+` WHERE gm.group_id = $1 AND gm.user_id = ANY($2::text[])`+groupMemberOrder,
		groupID, storage.DistinctMemberIDs(userIDs))
	if err != nil {
		return nil, fmt.Errorf("postgres: group members: %w", err)
	}
	return m, nil
}

func groupQueryMembers(ctx context.Context, q groupQueryer, query string, args ...any) ([]wire.GroupMember, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.GroupMember{}
	for rows.Next() {
		var (
			m    wire.GroupMember
			role string
		)
		if err := rows.Scan(&m.GroupID, &m.UserID, &m.GroupName, &m.Avatar, &m.JoinedAt,
			&m.Region, &m.Gender, &m.Signature, &m.Age, &role); err != nil {
			return nil, err
		}
		if m.Role, err = storage.ParseGroupRole(role); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// GroupMemberIDs implements storage.Groups.
func (s *Store) GroupMemberIDs(ctx context.Context, groupID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT gm.user_id FROM group_members gm WHERE gm.group_id = $1`+groupMemberOrder, groupID)
	if err != nil {
		return nil, fmt.Errorf("postgres: group member ids: %w", err)
	}
	ids, err := groupScanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: group member ids: %w", err)
	}
	return ids, nil
}

func groupScanIDs(rows pgx.Rows) ([]string, error) {
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// GroupMemberRole implements storage.Groups.
func (s *Store) GroupMemberRole(ctx context.Context, groupID, userID string) (int32, error) {
	r, err := groupRoleOf(ctx, s.pool, groupID, userID, false)
	if err != nil {
		return 0, fmt.Errorf("postgres: group member role: %w", err)
	}
	return r, nil
}

func groupRoleOf(ctx context.Context, q groupQueryer, groupID, userID string, forUpdate bool) (int32, error) {
	query := `SELECT role::text FROM group_members WHERE group_id = $1 AND user_id = $2`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	var label string
	err := q.QueryRow(ctx, query, groupID, userID).Scan(&label)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("user %q in group %q: %w", userID, groupID, storage.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return storage.ParseGroupRole(label)
}

// AddGroupMembers implements storage.Groups.
func (s *Store) AddGroupMembers(ctx context.Context, groupID string, userIDs []string) ([]string, error) {
	ids := storage.DistinctMemberIDs(userIDs)
	var added []string
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE: a concurrent DeleteGroup cannot commit between the check and the insert.
		if _, err := groupByID(ctx, tx, groupID, true); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO group_members (group_id, user_id, role, joined_at)
			SELECT $1, u.id, 'Member', $2 FROM users u WHERE u.id = ANY($3::text[]) AND NOT u.is_delete
			ON CONFLICT (group_id, user_id) DO NOTHING RETURNING user_id`,
			groupID, time.Now().UnixMilli(), ids)
		if err != nil {
			return err
		}
		added, err = groupScanIDs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: add group members: %w", err)
	}
	return storage.MemberIDsInOrder(ids, added), nil
}

// RemoveGroupMembers implements storage.Groups.
func (s *Store) RemoveGroupMembers(ctx context.Context, groupID, actorID string, userIDs []string) ([]string, error) {
	ids := storage.DistinctMemberIDs(userIDs)
	var removed []string
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE holds the actor's role until commit.
		actorRole, err := groupRoleOf(ctx, tx, groupID, actorID, true)
		if err != nil {
			return err
		}
		label, err := storage.GroupRoleLabel(actorRole)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM group_members gm
			WHERE gm.group_id = $1 AND gm.user_id = ANY($2::text[]) AND gm.role > $3::text::group_role
			AND gm.user_id <> (SELECT owner FROM groups WHERE id = gm.group_id)
			RETURNING gm.user_id`, groupID, ids, label)
		if err != nil {
			return err
		}
		removed, err = groupScanIDs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: remove group members: %w", err)
	}
	return storage.MemberIDsInOrder(ids, removed), nil
}

// SetGroupMemberRole implements storage.Groups.
func (s *Store) SetGroupMemberRole(ctx context.Context, groupID, userID string, role int32) (wire.GroupMember, error) {
	if role != wire.RoleAdmin && role != wire.RoleMember {
		return wire.GroupMember{}, fmt.Errorf("postgres: set group member role: role %d is neither admin nor member", role)
	}
	label, _ := storage.GroupRoleLabel(role)
	var m []wire.GroupMember
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		if err := groupCheckNotOwner(ctx, tx, groupID, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE group_members SET role = $1::text::group_role WHERE group_id = $2 AND user_id = $3`,
			label, groupID, userID); err != nil {
			return err
		}
		var err error
		m, err = groupQueryMembers(ctx, tx, groupMemberSelect+` WHERE gm.group_id = $1 AND gm.user_id = $2`, groupID, userID)
		if err == nil && len(m) != 1 {
			err = fmt.Errorf("read back %d rows", len(m))
		}
		return err
	})
	if err != nil {
		return wire.GroupMember{}, fmt.Errorf("postgres: set group member role: %w", err)
	}
	return m[0], nil
}

// groupCheckNotOwner locks userID's member row; it returns ErrNotFound if
// userID is not a member and ErrGroupOwner if userID owns the group (role
// Owner, or the group's owner column).
func groupCheckNotOwner(ctx context.Context, q groupQueryer, groupID, userID string) error {
	role, err := groupRoleOf(ctx, q, groupID, userID, true)
	if err != nil {
		return err
	}
	var owner string
	if err := q.QueryRow(ctx, `SELECT owner FROM groups WHERE id = $1`, groupID).Scan(&owner); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if role == wire.RoleOwner || owner == userID {
		return fmt.Errorf("%w: %q owns group %q", storage.ErrGroupOwner, userID, groupID)
	}
	return nil
}

// ExitGroup implements storage.Groups.
func (s *Store) ExitGroup(ctx context.Context, groupID, userID string) error {
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		if err := groupCheckNotOwner(ctx, tx, groupID, userID); err != nil {
			if errors.Is(err, storage.ErrGroupOwner) {
				return fmt.Errorf("the owner cannot exit, dismiss the group instead: %w", err)
			}
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1 AND user_id = $2`, groupID, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: exit group: %w", err)
	}
	return nil
}

// DeleteGroup implements storage.Groups.
func (s *Store) DeleteGroup(ctx context.Context, groupID string) error {
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM groups WHERE id = $1`, groupID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("group %q: %w", groupID, storage.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1`, groupID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete group: %w", err)
	}
	return nil
}

// UpdateGroup implements storage.Groups.
func (s *Store) UpdateGroup(ctx context.Context, u storage.GroupUpdate) (wire.GroupInfo, bool, error) {
	var (
		g       wire.GroupInfo
		changed bool
	)
	err := s.groupTx(ctx, func(tx pgx.Tx) error {
		var err error
		if g, err = groupByID(ctx, tx, u.ID, true); err != nil {
			return err
		}
		if changed = storage.ApplyGroupUpdate(&g, u, time.Now().UnixMilli()); !changed {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE groups SET name = $1, avatar = $2, description = $3, announcement = $4, update_time = $5
			WHERE id = $6`, g.Name, g.Avatar, g.Description, g.Announcement, g.UpdateTime, g.ID)
		return err
	})
	if err != nil {
		return wire.GroupInfo{}, false, fmt.Errorf("postgres: update group: %w", err)
	}
	return g, changed, nil
}
