// Package group serves the /group routes of the wire (sandcat-wire.md §2.3)
// and emits the group notices (§3.4, types 2–6 and 9) through a Sender.
//
// Differences from the original, on purpose (bugs B5 and B6 of §11):
//   - every route checks that the token's user is the acting user (the path
//     :user_id or the body user_id), 403 Forbidden otherwise;
//   - the owner of a new group is the caller, not the body's `owner`;
//   - reads, invite and exit need membership: 404 NotFound when the group does
//     not exist, 403 Forbidden when the caller is not a member (never 500);
//   - update needs the owner or an admin; remove needs the owner or an admin,
//     and an admin removes neither the owner nor another admin (403 otherwise,
//     and nothing is removed); dismiss needs the owner; the owner cannot exit
//     (403: dismiss the group instead);
//   - inviting members already in the group skips them (no 500); no notice is
//     sent when nothing changed (nobody new invited, nobody removed, an update
//     that changes nothing);
//   - new routes: PUT /group/member/role (the owner promotes or demotes admins)
//     and GET /group/list/{user_id} (the caller's groups). See ROUTES.md.
//
// Notices go to the members at the time of the operation, excluding the
// actor (its other devices get an echo from the pipeline): read before the
// change for remove, exit and dismiss (so removed and leaving members, and all
// members of a dismissed group, get it), after the change for create and
// invite (so new members get it).
package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// Sender publishes a notice through the message pipeline to the users in to
// (msgserver's producer implements it). It sets m.ServerID, m.SendTime and
// m.SendSeq in place and returns once the notice is durable.
type Sender interface {
	Send(ctx context.Context, m *wire.Msg, to []string) error
}

// DefaultNoticeTimeout bounds the sending of one notice.
const DefaultNoticeTimeout = 10 * time.Second

// Options configure a Service.
type Options struct {
	Store  storage.Groups // required
	Sender Sender         // required
	// RequireUser is the auth middleware (httpx.RequireUser); required.
	RequireUser func(http.Handler) http.Handler
	Log         *slog.Logger // slog.Default() if nil
	// NoticeTimeout bounds the sending of one notice (DefaultNoticeTimeout if 0).
	// A notice is sent even if the client goes away once the change is stored.
	NoticeTimeout time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Service holds the /group routes.
type Service struct {
	store         storage.Groups
	sender        Sender
	requireUser   func(http.Handler) http.Handler
	log           *slog.Logger
	noticeTimeout time.Duration
	now           func() time.Time
}

// New checks the options and returns the service.
func New(o Options) (*Service, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("group: Options.Store is nil")
	case o.Sender == nil:
		return nil, errors.New("group: Options.Sender is nil")
	case o.RequireUser == nil:
		return nil, errors.New("group: Options.RequireUser is nil (every /group route is authenticated)")
	case o.NoticeTimeout < 0:
		return nil, fmt.Errorf("group: negative NoticeTimeout %v", o.NoticeTimeout)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.NoticeTimeout == 0 {
		o.NoticeTimeout = DefaultNoticeTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: o.Store, sender: o.Sender, requireUser: o.RequireUser, log: o.Log,
		noticeTimeout: o.NoticeTimeout, now: o.Now}, nil
}

// Register adds the routes to r, all authenticated (see ROUTES.md):
//
//	POST   /group/member                     GetMemberReq -> [GroupMember]
//	DELETE /group/member                     RemoveMemberRequest -> 200, GroupRemoveMember
//	PUT    /group/member/role                (new) {user_id, group_id, member_id, role} -> GroupMember
//	GET    /group/member/{user_id}/{group_id} -> {group, members}
//	PUT    /group/invite                     GroupInviteNew -> 200, GroupInviteNew
//	GET    /group/list/{user_id}             (new) -> [GroupInfo]
//	DELETE /group                            {user_id, group_id, is_dismiss} -> 200, GroupDismiss | GroupMemberExit
//	POST   /group/{user_id}                  GroupCreate -> GroupInvitation, GroupInvitation
//	PUT    /group/{user_id}                  GroupUpdate -> GroupInfo, GroupUpdate
//	GET    /group/{user_id}/{group_id}       -> GroupInfo
//
// Fixed paths are registered before the {user_id} patterns they would
// otherwise match.
func (s *Service) Register(r *mux.Router) {
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		return s.requireUser(httpx.Handler{Log: s.log, Fn: fn})
	}
	r.Handle("/group/member", h(s.membersByID)).Methods(http.MethodPost)
	r.Handle("/group/member", h(s.removeMembers)).Methods(http.MethodDelete)
	r.Handle("/group/member/role", h(s.setRole)).Methods(http.MethodPut)
	r.Handle("/group/member/{user_id}/{group_id}", h(s.members)).Methods(http.MethodGet)
	r.Handle("/group/invite", h(s.invite)).Methods(http.MethodPut)
	r.Handle("/group/list/{user_id}", h(s.list)).Methods(http.MethodGet)
	r.Handle("/group", h(s.deleteOrExit)).Methods(http.MethodDelete)
	r.Handle("/group/{user_id}", h(s.create)).Methods(http.MethodPost)
	r.Handle("/group/{user_id}", h(s.update)).Methods(http.MethodPut)
	r.Handle("/group/{user_id}/{group_id}", h(s.get)).Methods(http.MethodGet)
}

// Request bodies (the proto messages of §2.3; missing fields are zero).
type (
	createRequest struct {
		ID        string   `json:"id"`    // ignored: the server makes the id
		Owner     string   `json:"owner"` // ignored: the owner is the caller
		Avatar    string   `json:"avatar"`
		GroupName string   `json:"group_name"`
		MembersID []string `json:"members_id"`
	}
	inviteRequest struct {
		UserID  string   `json:"user_id"`
		GroupID string   `json:"group_id"`
		Members []string `json:"members"`
	}
	deleteRequest struct {
		UserID    string `json:"user_id"`
		GroupID   string `json:"group_id"`
		IsDismiss bool   `json:"is_dismiss"`
	}
	updateRequest struct {
		ID           string `json:"id"`
		Name         string `json:"name"`
		Avatar       string `json:"avatar"`
		Description  string `json:"description"`
		Announcement string `json:"announcement"`
		UpdateTime   int64  `json:"update_time"` // ignored: the server stamps it
	}
	membersRequest struct {
		UserID  string   `json:"user_id"`
		GroupID string   `json:"group_id"`
		MemIDs  []string `json:"mem_ids"`
	}
	removeRequest struct {
		UserID  string   `json:"user_id"`
		GroupID string   `json:"group_id"`
		MemID   []string `json:"mem_id"`
	}
	roleRequest struct {
		UserID   string `json:"user_id"`
		GroupID  string `json:"group_id"`
		MemberID string `json:"member_id"`
		Role     int32  `json:"role"`
	}
)

// membersResponse is the body of GET /group/member/{user_id}/{group_id}.
type membersResponse struct {
	Group   wire.GroupInfo     `json:"group"`
	Members []wire.GroupMember `json:"members"`
}

// POST /group/{user_id}
func (s *Service) create(w http.ResponseWriter, r *http.Request) error {
	uid := mux.Vars(r)["user_id"]
	if err := httpx.SameUser(r, uid); err != nil {
		return err
	}
	var req createRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	now := s.now().UnixMilli()
	info := wire.GroupInfo{ID: ids.New(), Owner: uid, Name: req.GroupName, Avatar: req.Avatar, CreateTime: now, UpdateTime: now}
	info, members, err := s.store.CreateGroup(r.Context(), info, append(req.MembersID, uid))
	if errors.Is(err, storage.ErrNotFound) {
		return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "user %q not found", uid)
	}
	if err != nil {
		return dbError(err)
	}
	inv := wire.GroupInvitation{Info: &info, Members: members}
	to := make([]string, len(members))
	for i, m := range members {
		to[i] = m.UserID
	}
	if err := s.notify(r.Context(), uid, info.ID, wire.MsgTypeGroupInvitation, inv.MarshalBincode(), to); err != nil {
		return err
	}
	httpx.WriteJSON(w, inv)
	return nil
}

// GET /group/{user_id}/{group_id}
func (s *Service) get(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if err := httpx.SameUser(r, v["user_id"]); err != nil {
		return err
	}
	g, _, err := s.member(r.Context(), v["group_id"], v["user_id"])
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, g)
	return nil
}

// GET /group/member/{user_id}/{group_id}
func (s *Service) members(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if err := httpx.SameUser(r, v["user_id"]); err != nil {
		return err
	}
	g, _, err := s.member(r.Context(), v["group_id"], v["user_id"])
	if err != nil {
		return err
	}
	ms, err := s.store.GroupMembers(r.Context(), g.ID)
	if err != nil {
		return dbError(err)
	}
	httpx.WriteJSON(w, membersResponse{Group: g, Members: nonNil(ms)})
	return nil
}

// POST /group/member
func (s *Service) membersByID(w http.ResponseWriter, r *http.Request) error {
	var req membersRequest
	if err := s.decodeActing(w, r, &req, &req.UserID, &req.GroupID); err != nil {
		return err
	}
	if _, _, err := s.member(r.Context(), req.GroupID, req.UserID); err != nil {
		return err
	}
	ms, err := s.store.GroupMembersByID(r.Context(), req.GroupID, req.MemIDs)
	if err != nil {
		return dbError(err)
	}
	httpx.WriteJSON(w, nonNil(ms))
	return nil
}

// PUT /group/invite
func (s *Service) invite(w http.ResponseWriter, r *http.Request) error {
	var req inviteRequest
	if err := s.decodeActing(w, r, &req, &req.UserID, &req.GroupID); err != nil {
		return err
	}
	ctx := r.Context()
	if _, _, err := s.member(ctx, req.GroupID, req.UserID); err != nil {
		return err
	}
	added, err := s.store.AddGroupMembers(ctx, req.GroupID, req.Members)
	if errors.Is(err, storage.ErrNotFound) {
		return groupNotFound(req.GroupID)
	}
	if err != nil {
		return dbError(err)
	}
	if len(added) > 0 {
		to, err := s.store.GroupMemberIDs(ctx, req.GroupID)
		if err != nil {
			return dbError(err)
		}
		if err := s.notify(ctx, req.UserID, req.GroupID, wire.MsgTypeGroupInviteNew, wire.EncodeStrings(added), to); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// DELETE /group
func (s *Service) deleteOrExit(w http.ResponseWriter, r *http.Request) error {
	var req deleteRequest
	if err := s.decodeActing(w, r, &req, &req.UserID, &req.GroupID); err != nil {
		return err
	}
	ctx := r.Context()
	g, err := s.group(ctx, req.GroupID)
	if err != nil {
		return err
	}
	if req.IsDismiss {
		if g.Owner != req.UserID {
			return httpx.Forbidden("only the owner can dismiss the group")
		}
		before, err := s.store.GroupMemberIDs(ctx, g.ID)
		if err != nil {
			return dbError(err)
		}
		if err := s.store.DeleteGroup(ctx, g.ID); errors.Is(err, storage.ErrNotFound) {
			return groupNotFound(g.ID)
		} else if err != nil {
			return dbError(err)
		}
		if err := s.notify(ctx, req.UserID, g.ID, wire.MsgTypeGroupDismiss, nil, before); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if g.Owner == req.UserID {
		return errOwnerExit()
	}
	if _, err := s.role(ctx, g.ID, req.UserID); err != nil {
		return err
	}
	before, err := s.store.GroupMemberIDs(ctx, g.ID)
	if err != nil {
		return dbError(err)
	}
	switch err := s.store.ExitGroup(ctx, g.ID, req.UserID); {
	case errors.Is(err, storage.ErrGroupOwner):
		return errOwnerExit()
	case errors.Is(err, storage.ErrNotFound):
		return errNotMember()
	case err != nil:
		return dbError(err)
	}
	if err := s.notify(ctx, req.UserID, g.ID, wire.MsgTypeGroupMemberExit, nil, before); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// PUT /group/{user_id}
func (s *Service) update(w http.ResponseWriter, r *http.Request) error {
	uid := mux.Vars(r)["user_id"]
	if err := httpx.SameUser(r, uid); err != nil {
		return err
	}
	var req updateRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.ID == "" {
		return httpx.Bad("id (the group id) is required")
	}
	ctx := r.Context()
	_, role, err := s.member(ctx, req.ID, uid)
	if err != nil {
		return err
	}
	if role != wire.RoleOwner && role != wire.RoleAdmin {
		return httpx.Forbidden("only the owner or an admin can update the group")
	}
	info, changed, err := s.store.UpdateGroup(ctx, storage.GroupUpdate{ID: req.ID, Name: req.Name, Avatar: req.Avatar,
		Description: req.Description, Announcement: req.Announcement})
	if errors.Is(err, storage.ErrNotFound) {
		return groupNotFound(req.ID)
	}
	if err != nil {
		return dbError(err)
	}
	if changed {
		to, err := s.store.GroupMemberIDs(ctx, info.ID)
		if err != nil {
			return dbError(err)
		}
		if err := s.notify(ctx, uid, info.ID, wire.MsgTypeGroupUpdate, info.MarshalBincode(), to); err != nil {
			return err
		}
	}
	httpx.WriteJSON(w, info)
	return nil
}

// DELETE /group/member
func (s *Service) removeMembers(w http.ResponseWriter, r *http.Request) error {
	var req removeRequest
	if err := s.decodeActing(w, r, &req, &req.UserID, &req.GroupID); err != nil {
		return err
	}
	ctx := r.Context()
	_, role, err := s.member(ctx, req.GroupID, req.UserID)
	if err != nil {
		return err
	}
	if role != wire.RoleOwner && role != wire.RoleAdmin {
		return httpx.Forbidden("only the owner or an admin can remove members")
	}
	targets, err := s.store.GroupMembersByID(ctx, req.GroupID, req.MemID)
	if err != nil {
		return dbError(err)
	}
	for _, t := range targets {
		switch {
		case t.Role == wire.RoleOwner:
			return httpx.Forbidden("the owner cannot be removed")
		case t.Role == wire.RoleAdmin && role != wire.RoleOwner:
			return httpx.Forbidden("only the owner can remove an admin")
		}
	}
	before, err := s.store.GroupMemberIDs(ctx, req.GroupID)
	if err != nil {
		return dbError(err)
	}
	removed, err := s.store.RemoveGroupMembers(ctx, req.GroupID, req.UserID, req.MemID)
	if errors.Is(err, storage.ErrNotFound) {
		return errNotMember()
	}
	if err != nil {
		return dbError(err)
	}
	if len(removed) > 0 {
		if err := s.notify(ctx, req.UserID, req.GroupID, wire.MsgTypeGroupRemoveMember, wire.EncodeStrings(removed), before); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// PUT /group/member/role (new)
func (s *Service) setRole(w http.ResponseWriter, r *http.Request) error {
	var req roleRequest
	if err := s.decodeActing(w, r, &req, &req.UserID, &req.GroupID); err != nil {
		return err
	}
	if req.MemberID == "" {
		return httpx.Bad("member_id is required")
	}
	if req.Role != wire.RoleAdmin && req.Role != wire.RoleMember {
		return httpx.Bad("role must be %d (admin) or %d (member); ownership cannot be transferred", wire.RoleAdmin, wire.RoleMember)
	}
	ctx := r.Context()
	g, err := s.group(ctx, req.GroupID)
	if err != nil {
		return err
	}
	if g.Owner != req.UserID {
		return httpx.Forbidden("only the owner can change roles")
	}
	m, err := s.store.SetGroupMemberRole(ctx, g.ID, req.MemberID, req.Role)
	switch {
	case errors.Is(err, storage.ErrGroupOwner):
		return httpx.Forbidden("the owner's role cannot be changed")
	case errors.Is(err, storage.ErrNotFound):
		return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "%q is not a member of the group", req.MemberID)
	case err != nil:
		return dbError(err)
	}
	httpx.WriteJSON(w, m)
	return nil
}

// GET /group/list/{user_id} (new)
func (s *Service) list(w http.ResponseWriter, r *http.Request) error {
	uid := mux.Vars(r)["user_id"]
	if err := httpx.SameUser(r, uid); err != nil {
		return err
	}
	gs, err := s.store.UserGroups(r.Context(), uid)
	if err != nil {
		return dbError(err)
	}
	if gs == nil {
		gs = []wire.GroupInfo{}
	}
	httpx.WriteJSON(w, gs)
	return nil
}

// decodeActing decodes a JSON body naming its acting user and group, and
// checks that the token is the acting user's.
func (s *Service) decodeActing(w http.ResponseWriter, r *http.Request, v any, userID, groupID *string) error {
	if err := httpx.DecodeJSON(w, r, v); err != nil {
		return err
	}
	if err := httpx.SameUser(r, *userID); err != nil {
		return err
	}
	if *groupID == "" {
		return httpx.Bad("group_id is required")
	}
	return nil
}

const noticeNotSent = "the change is stored but its notice could not be sent"

func errNotMember() error { return httpx.Forbidden("not a member of the group") }

func errOwnerExit() error {
	return httpx.Forbidden("the owner cannot exit the group; dismiss it instead")
}

func groupNotFound(gid string) error {
	return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "group %q not found", gid)
}

func dbError(err error) error { return httpx.Internal(httpx.KindDbError, err) }

// group returns a group's info: 404 if it does not exist.
func (s *Service) group(ctx context.Context, gid string) (wire.GroupInfo, error) {
	g, err := s.store.GetGroup(ctx, gid)
	if errors.Is(err, storage.ErrNotFound) {
		return wire.GroupInfo{}, groupNotFound(gid)
	}
	if err != nil {
		return wire.GroupInfo{}, dbError(err)
	}
	return g, nil
}

// role returns uid's role in gid: 403 if uid is not a member.
func (s *Service) role(ctx context.Context, gid, uid string) (int32, error) {
	role, err := s.store.GroupMemberRole(ctx, gid, uid)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, errNotMember()
	}
	if err != nil {
		return 0, dbError(err)
	}
	return role, nil
}

// member returns the group and uid's role in it: 404 if the group does not
// exist, 403 if uid is not a member.
func (s *Service) member(ctx context.Context, gid, uid string) (wire.GroupInfo, int32, error) {
	g, err := s.group(ctx, gid)
	if err != nil {
		return wire.GroupInfo{}, 0, err
	}
	role, err := s.role(ctx, gid, uid)
	if err != nil {
		return wire.GroupInfo{}, 0, err
	}
	return g, role, nil
}

// notify sends a group notice from actor to the members in to, without the
// actor. The change is already stored, so the client going away does not
// cancel the notice.
func (s *Service) notify(ctx context.Context, actor, gid string, typ wire.MsgType, content []byte, to []string) error {
	m := &wire.Msg{
		SendID:      actor,
		ReceiverID:  gid,
		LocalID:     ids.New(),
		CreateTime:  s.now().UnixMilli(),
		MsgType:     typ,
		ContentType: wire.ContentDefault,
		Content:     content,
		GroupID:     gid,
	}
	recipients := make([]string, 0, len(to))
	for _, id := range storage.DistinctMemberIDs(to) {
		if id != actor {
			recipients = append(recipients, id)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.noticeTimeout)
	defer cancel()
	if err := s.sender.Send(ctx, m, recipients); err != nil {
		d := noticeNotSent
		return &httpx.Error{Status: http.StatusInternalServerError, Kind: httpx.KindInternalServer, Details: &d,
			Err: fmt.Errorf("group: send %v for group %s: %w", typ, gid, err)}
	}
	return nil
}

func nonNil(ms []wire.GroupMember) []wire.GroupMember {
	if ms == nil {
		return []wire.GroupMember{}
	}
	return ms
}
