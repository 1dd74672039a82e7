package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/sandcat-im/sandcat/im/wire"
)

// ErrGroupOwner is returned when an operation would leave a group without its
// owner: the owner exiting, or the owner's role being changed. The owner
// dismisses the group instead (ownership transfer is not implemented).
var ErrGroupOwner = errors.New("storage: not allowed on the group owner")

// GroupUpdate is a change to a group's profile: empty fields are left as they are.
type GroupUpdate struct {
	ID           string
	Name         string
	Avatar       string
	Description  string
	Announcement string
}

// Groups keeps groups (table groups) and their members (table group_members).
//
// Members are returned with the profile of their user (sandcat-wire.md §2.3):
// GroupMember.GroupName is the member's user name, Remark is always nil, and
// Region, Gender, Signature (NULL as ""), Avatar and Age come from users.
// Member lists are ordered by role (owner, admins, members), then joined_at,
// then user id. Only users that exist and are not deleted (users.is_delete)
// become members. Roles are the wire's values (wire.RoleOwner, wire.RoleAdmin,
// wire.RoleMember).
type Groups interface {
	// CreateGroup inserts the group info (ID, Owner, Name, Avatar, Description,
	// Announcement, CreateTime, UpdateTime; zero times become now) and, in the
	// same transaction, one member row per distinct id of memberIDs that is a
	// user, plus the owner, who is always a member: role Owner for info.Owner,
	// Member for the others, joined_at = CreateTime. Empty ids are ignored.
	// It returns the stored info and members. ErrNotFound if the owner is not a
	// user; ErrConflict if the group id is taken.
	CreateGroup(ctx context.Context, info wire.GroupInfo, memberIDs []string) (wire.GroupInfo, []wire.GroupMember, error)

	// GetGroup returns a group's info, ErrNotFound if there is no such group.
	GetGroup(ctx context.Context, groupID string) (wire.GroupInfo, error)

	// UserGroups returns the groups userID is a member of, oldest first.
	UserGroups(ctx context.Context, userID string) ([]wire.GroupInfo, error)

	// GroupMembers returns every member of a group (empty if there is no such group).
	GroupMembers(ctx context.Context, groupID string) ([]wire.GroupMember, error)

	// GroupMembersByID returns the members of a group among userIDs; ids that
	// are not members are left out.
	GroupMembersByID(ctx context.Context, groupID string, userIDs []string) ([]wire.GroupMember, error)

	// GroupMemberIDs returns the user ids of a group's members.
	GroupMemberIDs(ctx context.Context, groupID string) ([]string, error)

	// GroupMemberRole returns the role of userID in a group, ErrNotFound if
	// userID is not a member (or there is no such group).
	GroupMemberRole(ctx context.Context, groupID, userID string) (int32, error)

	// AddGroupMembers adds the distinct ids of userIDs that are users and not
	// yet members, as Member with joined_at now, in one transaction. It returns
	// the ids actually added, in the order given (empty, not an error, when
	// none). ErrNotFound if there is no such group.
	AddGroupMembers(ctx context.Context, groupID string, userIDs []string) ([]string, error)

	// RemoveGroupMembers removes, in one transaction, the listed members that
	// rank below actorID: the owner removes admins and members, an admin
	// removes members, a member removes nobody; the owner is never removed.
	// It returns the ids actually removed, in the order given. ErrNotFound if
	// actorID is not a member of the group.
	RemoveGroupMembers(ctx context.Context, groupID, actorID string, userIDs []string) ([]string, error)

	// SetGroupMemberRole sets the role of a member to wire.RoleAdmin or
	// wire.RoleMember and returns the member. ErrNotFound if userID is not a
	// member; ErrGroupOwner if userID is the owner; an error for any other role.
	SetGroupMemberRole(ctx context.Context, groupID, userID string, role int32) (wire.GroupMember, error)

	// ExitGroup deletes userID's member row. ErrNotFound if userID is not a
	// member; ErrGroupOwner (wrapped with an explanation) if userID owns the group.
	ExitGroup(ctx context.Context, groupID, userID string) error

	// DeleteGroup deletes a group and all its members in one transaction.
	// ErrNotFound if there is no such group.
	DeleteGroup(ctx context.Context, groupID string) error

	// UpdateGroup sets the non-empty fields of u that differ from the stored
	// ones and, when any did, update_time = now. It returns the group as
	// stored afterwards and whether anything changed. ErrNotFound if there is
	// no such group.
	UpdateGroup(ctx context.Context, u GroupUpdate) (wire.GroupInfo, bool, error)
}

// Role labels as stored in group_members.role (the PostgreSQL enum group_role).
const (
	GroupRoleLabelOwner  = "Owner"
	GroupRoleLabelAdmin  = "Admin"
	GroupRoleLabelMember = "Member"
)

// GroupRoleLabel returns the stored label of a wire role.
func GroupRoleLabel(role int32) (string, error) {
	switch role {
	case wire.RoleOwner:
		return GroupRoleLabelOwner, nil
	case wire.RoleAdmin:
		return GroupRoleLabelAdmin, nil
	case wire.RoleMember:
		return GroupRoleLabelMember, nil
	}
	return "", fmt.Errorf("storage: unknown group role %d", role)
}

// ParseGroupRole returns the wire role of a stored label.
func ParseGroupRole(label string) (int32, error) {
	switch label {
	case GroupRoleLabelOwner:
		return wire.RoleOwner, nil
	case GroupRoleLabelAdmin:
		return wire.RoleAdmin, nil
	case GroupRoleLabelMember:
		return wire.RoleMember, nil
	}
	return 0, fmt.Errorf("storage: unknown group role %q", label)
}

// DistinctMemberIDs returns ids without empty strings and repeats, in first-seen order.
func DistinctMemberIDs(ids []string) []string {
	out := make([]string, 0, len(ids))
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if id == "" {
			continue
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// MemberIDsInOrder returns the ids of want that are in got, in the order of want.
// want must be distinct (see DistinctMemberIDs).
func MemberIDsInOrder(want, got []string) []string {
	set := make(map[string]struct{}, len(got))
	for _, id := range got {
		set[id] = struct{}{}
	}
	out := make([]string, 0, len(got))
	for _, id := range want {
		if _, ok := set[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// ApplyGroupUpdate copies into g the non-empty fields of u that differ from
// g's and, if any did, sets g.UpdateTime to now. It reports whether g changed.
func ApplyGroupUpdate(g *wire.GroupInfo, u GroupUpdate, now int64) bool {
	changed := false
	set := func(dst *string, v string) {
		if v != "" && v != *dst {
			*dst = v
			changed = true
		}
	}
	set(&g.Name, u.Name)
	set(&g.Avatar, u.Avatar)
	set(&g.Description, u.Description)
	set(&g.Announcement, u.Announcement)
	if changed {
		g.UpdateTime = now
	}
	return changed
}
