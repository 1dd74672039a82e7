package matrix

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"
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

func (b *Bridge) homeserverError(err error) error {
	d := "the Matrix homeserver failed"
	return &httpx.Error{Status: http.StatusBadGateway, Kind: httpx.KindInternalServer, Details: &d, Err: err}
}
