package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// PortalResponse is the answer of the bridge routes.
type PortalResponse struct {
	GroupID string `json:"group_id"`
	RoomID  string `json:"room_id"`
	Alias   string `json:"alias"`
}

// InviteRequest is the body of POST /matrix/group/{group_id}/invite.
type InviteRequest struct {
	MXID string `json:"mxid"` // the Matrix user or bot to invite, @local:server
}

// Register mounts the bridge's Sandcat-facing routes, for the owner or an
// admin of a group (Authorization: Bearer <Sandcat access token>):
//
//	POST /matrix/group/{group_id}/bridge   -> 200 PortalResponse
//	    bridges the group: creates its portal room (once) with the alias
//	    #<alias_prefix><group id>:<server>.
//	POST /matrix/group/{group_id}/invite   InviteRequest -> 200 PortalResponse
//	    bridges the group when not yet and invites the Matrix user into the
//	    portal; once it joins, it is a member of the group.
//	POST /matrix/group/{group_id}/plumb    PlumbRequest -> 200 PortalResponse (alias "")
//	    plumbs an existing Matrix room into the group: the bridge bot joins
//	    it (it must have been invited, or the room must be public), the
//	    link is stored, the room's m.bridge state is set when the bot has
//	    the power, and a notice tells the room. 409 Conflict when the group
//	    already has a room or the room is already bridged; 403 Forbidden
//	    when the bot cannot join (not invited, banned); 404 NotFound when
//	    the room or alias is unknown to the homeserver.
//	DELETE /matrix/group/{group_id}/bridge -> 200 PortalResponse (the link removed)
//	    unbridges the group: a notice in the room, its m.bridge state
//	    emptied, the link forgotten. The puppets and the bot leave a
//	    plumbed room; a room the bridge created stays as it is. 404 when the
//	    group is not bridged.
//
// Errors use the wire's shape: 401 UnAuthorized, 403 Forbidden (not owner
// or admin), 404 NotFound (no such group), 400 BadRequest (not a Matrix user
// id), 502 InternalServer (the homeserver failed).
func (b *Bridge) Register(r *mux.Router, requireUser func(http.Handler) http.Handler) {
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		return requireUser(httpx.Handler{Log: b.log, Fn: fn})
	}
	r.Handle("/matrix/group/{group_id}/bridge", h(b.bridgeRoute)).Methods(http.MethodPost)
	r.Handle("/matrix/group/{group_id}/invite", h(b.inviteRoute)).Methods(http.MethodPost)
	r.Handle("/matrix/group/{group_id}/plumb", h(b.plumbRoute)).Methods(http.MethodPost)
	r.Handle("/matrix/group/{group_id}/bridge", h(b.unbridgeRoute)).Methods(http.MethodDelete)
}

// admin checks that the caller owns or administers the group of the route.
func (b *Bridge) admin(r *http.Request) (string, error) {
	gid := mux.Vars(r)["group_id"]
	role, err := b.groups.GroupMemberRole(r.Context(), gid, httpx.UserID(r.Context()))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "", httpx.NotFound()
	case err != nil:
		return "", httpx.Internal(httpx.KindDbError, err)
	case role != wire.RoleOwner && role != wire.RoleAdmin:
		return "", httpx.Forbidden("only the owner or an admin of group %q can bridge it", gid)
	}
	return gid, nil
}

func (b *Bridge) bridgeRoute(w http.ResponseWriter, r *http.Request) error {
	gid, err := b.admin(r)
	if err != nil {
		return err
	}
	p, err := b.EnsurePortal(r.Context(), gid)
	if err != nil {
		return b.homeserverError(err)
	}
	httpx.WriteJSON(w, PortalResponse{GroupID: p.GroupID, RoomID: p.RoomID, Alias: p.Alias})
	return nil
}

func (b *Bridge) inviteRoute(w http.ResponseWriter, r *http.Request) error {
	gid, err := b.admin(r)
	if err != nil {
		return err
	}
	var req InviteRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	p, err := b.InviteMatrixUser(r.Context(), gid, id.UserID(req.MXID))
	if errors.Is(err, ErrBadMXID) {
		return httpx.Bad("%q is not the Matrix id of a user outside the bridge", req.MXID)
	}
	if err != nil {
		return b.homeserverError(err)
	}
	httpx.WriteJSON(w, PortalResponse{GroupID: p.GroupID, RoomID: p.RoomID, Alias: p.Alias})
	return nil
}

// PlumbRequest is the body of POST /matrix/group/{group_id}/plumb.
type PlumbRequest struct {
	Room string `json:"room"` // the room to plumb: !roomid:server or #alias:server
}

func (b *Bridge) plumbRoute(w http.ResponseWriter, r *http.Request) error {
	gid, err := b.admin(r)
	if err != nil {
		return err
	}
	var req PlumbRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if !roomArg(req.Room) {
		return httpx.Bad("%q is not a Matrix room id (!id:server) or alias (#alias:server)", req.Room)
	}
	p, err := b.Plumb(r.Context(), gid, req.Room)
	switch {
	case errors.Is(err, ErrAlreadyBridged):
		return httpx.Errorf(http.StatusConflict, httpx.KindConflict, "group %q or room %q is already bridged", gid, req.Room)
	case errors.Is(err, ErrCannotJoin) && errors.Is(err, mautrix.MNotFound):
		return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "the homeserver does not know the room %q", req.Room)
	case errors.Is(err, ErrCannotJoin):
		return httpx.Forbidden("the bridge bot cannot join the room %q: invite it first (or make the room public)", req.Room)
	case errors.Is(err, storage.ErrNotFound):
		return httpx.NotFound()
	case err != nil:
		return b.homeserverError(err)
	}
	httpx.WriteJSON(w, PortalResponse{GroupID: p.GroupID, RoomID: p.RoomID, Alias: p.Alias})
	return nil
}

func (b *Bridge) unbridgeRoute(w http.ResponseWriter, r *http.Request) error {
	gid, err := b.admin(r)
	if err != nil {
		return err
	}
	p, err := b.store.GetPortal(r.Context(), gid)
	if errors.Is(err, storage.ErrNotFound) {
		return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "group %q is not bridged", gid)
	}
	if err != nil {
		return httpx.Internal(httpx.KindDbError, err)
	}
	if err := b.unbridge(r.Context(), p, fmt.Sprintf("This room is no longer bridged to the Sandcat group %s.", gid)); err != nil {
		return httpx.Internal(httpx.KindDbError, err)
	}
	httpx.WriteJSON(w, PortalResponse{GroupID: p.GroupID, RoomID: p.RoomID, Alias: p.Alias})
	return nil
}

func (b *Bridge) homeserverError(err error) error {
	d := "the Matrix homeserver failed"
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		// The homeserver's own words (its errcode and message) tell the
		// operator what to fix; they carry no Sandcat internals.
		d += ": " + he.RespError.ErrCode + " " + he.RespError.Err
	} else if errors.As(err, &he) && he.Response != nil {
		d += fmt.Sprintf(": HTTP %d", he.Response.StatusCode)
	} else if errors.Is(err, context.DeadlineExceeded) {
		d += ": no answer in time"
	}
	return &httpx.Error{Status: http.StatusBadGateway, Kind: httpx.KindInternalServer, Details: &d, Err: err}
}
