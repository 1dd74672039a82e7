package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Groups = (*Store)(nil)

const (
	groupColumns = `g.id, g.owner, g.name, g.avatar, g.description, g.announcement, g.create_time, g.update_time`

	// groupRoleRank orders roles as the wire does: Owner 0, Admin 1, Member 2.
	groupRoleRank = `CASE gm.role WHEN 'Owner' THEN 0 WHEN 'Admin' THEN 1 ELSE 2 END`

	groupMemberSelect = `SELECT gm.group_id, gm.user_id, COALESCE(u.name, ''), COALESCE(u.avatar, ''), gm.joined_at,
		u.region, COALESCE(u.gender, ''), COALESCE(u.signature, ''), COALESCE(u.age, 0), gm.role
		FROM group_members gm LEFT JOIN users u ON u.id = gm.user_id`

	groupMemberOrder = ` ORDER BY ` + groupRoleRank + `, gm.joined_at, gm.user_id`

	// groupIDList selects the values of a JSON array of strings bound to one parameter.
	groupIDList = `(SELECT value FROM json_each(?))`
)

// groupQueryer is what *sql.DB and *sql.Tx share.
type groupQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func groupJSONIDs(ids []string) string {
	b, _ := json.Marshal(ids) // []string always marshals
	return string(b)
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
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ? AND is_delete = 0`, info.Owner).Scan(&n); err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	if n == 0 {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: owner %q: %w", info.Owner, storage.ErrNotFound)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO groups (id, owner, name, avatar, description, announcement, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		info.ID, info.Owner, info.Name, info.Avatar, info.Description, info.Announcement, info.CreateTime, info.UpdateTime)
	if err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	} else if k == 0 {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group %q: %w", info.ID, storage.ErrConflict)
	}
	// Rows left by a group of the same id that was never cleaned up are not members of this one.
	if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ?`, info.ID); err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (group_id, user_id, role, joined_at)
		SELECT ?, u.id, CASE WHEN u.id = ? THEN 'Owner' ELSE 'Member' END, ?
		FROM users u WHERE u.id IN `+groupIDList+` AND u.is_delete = 0`,
		info.ID, info.Owner, info.CreateTime, groupJSONIDs(ids)); err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group members: %w", err)
	}
	members, err := groupQueryMembers(ctx, tx, groupMemberSelect+` WHERE gm.group_id = ?`+groupMemberOrder, info.ID)
	if err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return wire.GroupInfo{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	return info, members, nil
}

// GetGroup implements storage.Groups.
func (s *Store) GetGroup(ctx context.Context, groupID string) (wire.GroupInfo, error) {
	g, err := groupByID(ctx, s.db, groupID)
	if err != nil {
		return wire.GroupInfo{}, fmt.Errorf("sqlite: get group: %w", err)
	}
	return g, nil
}

func groupByID(ctx context.Context, q groupQueryer, groupID string) (wire.GroupInfo, error) {
	var g wire.GroupInfo
	err := q.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM groups g WHERE g.id = ?`, groupID).
		Scan(&g.ID, &g.Owner, &g.Name, &g.Avatar, &g.Description, &g.Announcement, &g.CreateTime, &g.UpdateTime)
	if errors.Is(err, sql.ErrNoRows) {
		return wire.GroupInfo{}, fmt.Errorf("group %q: %w", groupID, storage.ErrNotFound)
	}
	return g, err
}

// UserGroups implements storage.Groups.
func (s *Store) UserGroups(ctx context.Context, userID string) ([]wire.GroupInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+groupColumns+` FROM groups g
		JOIN group_members gm ON gm.group_id = g.id WHERE gm.user_id = ? ORDER BY g.create_time, g.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: user groups: %w", err)
	}
	defer rows.Close()
	out := []wire.GroupInfo{}
	for rows.Next() {
		var g wire.GroupInfo
		if err := rows.Scan(&g.ID, &g.Owner, &g.Name, &g.Avatar, &g.Description, &g.Announcement, &g.CreateTime, &g.UpdateTime); err != nil {
			return nil, fmt.Errorf("sqlite: user groups: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: user groups: %w", err)
	}
	return out, nil
}

// GroupMembers implements storage.Groups.
func (s *Store) GroupMembers(ctx context.Context, groupID string) ([]wire.GroupMember, error) {
	m, err := groupQueryMembers(ctx, s.db, groupMemberSelect+` WHERE gm.group_id = ?`+groupMemberOrder, groupID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: group members: %w", err)
	}
	return m, nil
}

// GroupMembersByID implements storage.Groups.
func (s *Store) GroupMembersByID(ctx context.Context, groupID string, userIDs []string) ([]wire.GroupMember, error) {
	m, err := groupQueryMembers(ctx, s.db, groupMemberSelect+` WHERE gm.group_id = ? AND gm.user_id IN `+groupIDList+groupMemberOrder,
		groupID, groupJSONIDs(storage.DistinctMemberIDs(userIDs)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: group members: %w", err)
	}
	return m, nil
}

func groupQueryMembers(ctx context.Context, q groupQueryer, query string, args ...any) ([]wire.GroupMember, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.GroupMember{}
	for rows.Next() {
		var (
			m      wire.GroupMember
			region sql.NullString
			role   string
		)
		if err := rows.Scan(&m.GroupID, &m.UserID, &m.GroupName, &m.Avatar, &m.JoinedAt,
			&region, &m.Gender, &m.Signature, &m.Age, &role); err != nil {
			return nil, err
		}
		if region.Valid {
			m.Region = &region.String
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
	rows, err := s.db.QueryContext(ctx, `SELECT gm.user_id FROM group_members gm WHERE gm.group_id = ?`+groupMemberOrder, groupID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: group member ids: %w", err)
	}
	ids, err := groupScanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: group member ids: %w", err)
	}
	return ids, nil
}

func groupScanIDs(rows *sql.Rows) ([]string, error) {
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
	r, err := groupRoleOf(ctx, s.db, groupID, userID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: group member role: %w", err)
	}
	return r, nil
}

func groupRoleOf(ctx context.Context, q groupQueryer, groupID, userID string) (int32, error) {
	var label string
	err := q.QueryRowContext(ctx, `SELECT role FROM group_members WHERE group_id = ? AND user_id = ?`, groupID, userID).Scan(&label)
	if errors.Is(err, sql.ErrNoRows) {
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
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: add group members: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := groupByID(ctx, tx, groupID); err != nil {
		return nil, fmt.Errorf("sqlite: add group members: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO group_members (group_id, user_id, role, joined_at)
		SELECT ?, u.id, 'Member', ? FROM users u WHERE u.id IN `+groupIDList+` AND u.is_delete = 0
		ON CONFLICT (group_id, user_id) DO NOTHING RETURNING user_id`,
		groupID, time.Now().UnixMilli(), groupJSONIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: add group members: %w", err)
	}
	added, err := groupScanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: add group members: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: add group members: %w", err)
	}
	return storage.MemberIDsInOrder(ids, added), nil
}

// RemoveGroupMembers implements storage.Groups.
func (s *Store) RemoveGroupMembers(ctx context.Context, groupID, actorID string, userIDs []string) ([]string, error) {
	ids := storage.DistinctMemberIDs(userIDs)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: remove group members: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	actorRole, err := groupRoleOf(ctx, tx, groupID, actorID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: remove group members: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `DELETE FROM group_members AS gm
		WHERE gm.group_id = ? AND gm.user_id IN `+groupIDList+` AND `+groupRoleRank+` > ?
		AND gm.user_id <> (SELECT owner FROM groups WHERE id = gm.group_id)
		RETURNING user_id`, groupID, groupJSONIDs(ids), actorRole)
	if err != nil {
		return nil, fmt.Errorf("sqlite: remove group members: %w", err)
	}
	removed, err := groupScanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: remove group members: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: remove group members: %w", err)
	}
	return storage.MemberIDsInOrder(ids, removed), nil
}

// SetGroupMemberRole implements storage.Groups.
func (s *Store) SetGroupMemberRole(ctx context.Context, groupID, userID string, role int32) (wire.GroupMember, error) {
	if role != wire.RoleAdmin && role != wire.RoleMember {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: role %d is neither admin nor member", role)
	}
	label, _ := storage.GroupRoleLabel(role)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := groupCheckNotOwner(ctx, tx, groupID, userID); err != nil {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?`, label, groupID, userID); err != nil {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: %w", err)
	}
	m, err := groupQueryMembers(ctx, tx, groupMemberSelect+` WHERE gm.group_id = ? AND gm.user_id = ?`, groupID, userID)
	if err != nil {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: %w", err)
	}
	if len(m) != 1 {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: read back %d rows", len(m))
	}
	if err := tx.Commit(); err != nil {
		return wire.GroupMember{}, fmt.Errorf("sqlite: set group member role: %w", err)
	}
	return m[0], nil
}

// groupCheckNotOwner returns ErrNotFound if userID is not a member and ErrGroupOwner
// if userID owns the group (role Owner, or the group's owner column).
func groupCheckNotOwner(ctx context.Context, q groupQueryer, groupID, userID string) error {
	role, err := groupRoleOf(ctx, q, groupID, userID)
	if err != nil {
		return err
	}
	var owner string
	if err := q.QueryRowContext(ctx, `SELECT owner FROM groups WHERE id = ?`, groupID).Scan(&owner); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if role == wire.RoleOwner || owner == userID {
		return fmt.Errorf("%w: %q owns group %q", storage.ErrGroupOwner, userID, groupID)
	}
	return nil
}

// ExitGroup implements storage.Groups.
func (s *Store) ExitGroup(ctx context.Context, groupID, userID string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: exit group: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := groupCheckNotOwner(ctx, tx, groupID, userID); err != nil {
		if errors.Is(err, storage.ErrGroupOwner) {
			return fmt.Errorf("sqlite: exit group: the owner cannot exit, dismiss the group instead: %w", err)
		}
		return fmt.Errorf("sqlite: exit group: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, groupID, userID); err != nil {
		return fmt.Errorf("sqlite: exit group: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: exit group: %w", err)
	}
	return nil
}

// DeleteGroup implements storage.Groups.
func (s *Store) DeleteGroup(ctx context.Context, groupID string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete group: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE id = ?`, groupID)
	if err != nil {
		return fmt.Errorf("sqlite: delete group: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete group: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: delete group %q: %w", groupID, storage.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ?`, groupID); err != nil {
		return fmt.Errorf("sqlite: delete group: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete group: %w", err)
	}
	return nil
}

// UpdateGroup implements storage.Groups.
func (s *Store) UpdateGroup(ctx context.Context, u storage.GroupUpdate) (wire.GroupInfo, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wire.GroupInfo{}, false, fmt.Errorf("sqlite: update group: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	g, err := groupByID(ctx, tx, u.ID)
	if err != nil {
		return wire.GroupInfo{}, false, fmt.Errorf("sqlite: update group: %w", err)
	}
	if !storage.ApplyGroupUpdate(&g, u, time.Now().UnixMilli()) {
		return g, false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE groups SET name = ?, avatar = ?, description = ?, announcement = ?, update_time = ?
		WHERE id = ?`, g.Name, g.Avatar, g.Description, g.Announcement, g.UpdateTime, g.ID); err != nil {
		return wire.GroupInfo{}, false, fmt.Errorf("sqlite: update group: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return wire.GroupInfo{}, false, fmt.Errorf("sqlite: update group: %w", err)
	}
	return g, true, nil
}
