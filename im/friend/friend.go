// Package friend serves the /friend routes of the Sandcat HTTP API
// (sandcat-wire.md §2.2) and emits the friend notices (FriendApplyReq,
// FriendApplyResp, FriendDelete) through the message pipeline.
//
// Routes (all behind the RequireUser middleware; the token's user must be the
// acting user, else 403 Forbidden — bug B5 of the original fixed):
//
//	POST   /friend                      FsCreate{user_id, friend_id, apply_msg?, req_remark?, source, platform?}
//	                                    → FriendshipWithUser of the target; notice FriendApplyReq to the target.
//	                                    Acting user: user_id. 400 for a request to oneself, 404 for an unknown
//	                                    target, 403 (no notice) when the target has blocked the requester.
//	GET    /friend/{id}/apply           → [FriendshipWithUser]: incoming Pending requests (broken in the original).
//	GET    /friend/query/{user_id}      → FriendInfo (public profile of any user; any authenticated caller).
//	GET    /friend/{id}/{offline_time}  → {"friends": [Friend], "fs": [FriendshipWithUser]} changed after offline_time.
//	PUT    /friend/agree                AgreeReply{fs_id, resp_msg?, resp_remark?, platform?} → Friend of the requester;
//	                                    notice FriendApplyResp to the requester. Acting user: the request's target.
//	PUT    /friend/reject               new: {fs_id, resp_msg?} → 200 empty; no notice. Acting user: the target.
//	DELETE /friend                      {user_id, friend_id, fs_id, platform?} → 200 empty; notice FriendDelete to friend_id.
//	PUT    /friend/remark               {user_id, friend_id, remark} → 200 empty.
//	POST   /friend/block                new: {user_id, friend_id} → 200 empty; user_id blocks friend_id. No notice.
//	DELETE /friend/block                new: {user_id, friend_id} → 200 empty; lifts the block.
//
// Errors use the wire's {kind, details}: 400 BadRequest for missing or
// invalid fields, 400 PathParsing for a bad offline_time, 403 Forbidden, 404
// NotFound for an unknown fs_id, user or friend, 409 Conflict for agreeing to
// a request that is no longer pending (or rejecting an accepted one), 500
// only for storage or pipeline failures. ROUTES.md has the details.
package friend

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

// Sender puts a notice into the message pipeline (the msgserver producer):
// it assigns server_id, send_time and, for types that consume one, the
// sender's send_seq, publishes durably for the users in to and returns once
// the message is durable. Friend notices always go to one user, m.ReceiverID.
type Sender interface {
	Send(ctx context.Context, m *wire.Msg, to []string) error
}

// Users looks up users (storage.Users satisfies it).
type Users interface {
	// GetUser returns the user id, or an error wrapping storage.ErrNotFound
	// when there is no such user or it is deleted.
	GetUser(ctx context.Context, id string) (*storage.User, error)
}

// Options configure a Service. Store, Users, Sender and RequireUser are required.
type Options struct {
	Store  storage.Friends
	Users  Users
	Sender Sender
	// RequireUser authenticates a request and puts its user id in the context
	// (httpx.RequireUser(verifier, log)).
	RequireUser func(http.Handler) http.Handler
	Log         *slog.Logger     // default slog.Default()
	Now         func() time.Time // default time.Now
}

// Service serves the /friend routes.
type Service struct {
	store  storage.Friends
	users  Users
	sender Sender
	auth   func(http.Handler) http.Handler
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Service.
func New(o Options) (*Service, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("friend: Options.Store is required")
	case o.Users == nil:
		return nil, errors.New("friend: Options.Users is required")
	case o.Sender == nil:
		return nil, errors.New("friend: Options.Sender is required")
	case o.RequireUser == nil:
		return nil, errors.New("friend: Options.RequireUser is required")
	}
	s := &Service{store: o.Store, users: o.Users, sender: o.Sender, auth: o.RequireUser, log: o.Log, now: o.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Register adds the /friend routes to r. /friend/{id}/apply and
// /friend/query/{user_id} are registered before /friend/{id}/{offline_time},
// which would otherwise match them.
func (s *Service) Register(r *mux.Router) {
	h := func(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
		return s.auth(httpx.Handler{Log: s.log, Fn: fn})
	}
	r.Handle("/friend", h(s.create)).Methods(http.MethodPost)
	r.Handle("/friend", h(s.delete)).Methods(http.MethodDelete)
	r.Handle("/friend/agree", h(s.agree)).Methods(http.MethodPut)
	r.Handle("/friend/reject", h(s.reject)).Methods(http.MethodPut)
	r.Handle("/friend/remark", h(s.remark)).Methods(http.MethodPut)
	r.Handle("/friend/block", h(s.block)).Methods(http.MethodPost)
	r.Handle("/friend/block", h(s.unblock)).Methods(http.MethodDelete)
	r.Handle("/friend/query/{user_id}", h(s.query)).Methods(http.MethodGet)
	r.Handle("/friend/{id}/apply", h(s.applyList)).Methods(http.MethodGet)
	r.Handle("/friend/{id}/{offline_time}", h(s.sync)).Methods(http.MethodGet)
}

// storeError maps a storage error to the HTTP error of the wire.
func storeError(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return httpx.NotFound()
	case errors.Is(err, storage.ErrConflict):
		return httpx.Errorf(http.StatusConflict, httpx.KindConflict, "the friend request is no longer pending")
	}
	return httpx.Internal(httpx.KindDbError, err)
}

// usersError maps an error of Users to the HTTP error of the wire.
func usersError(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return httpx.NotFound()
	}
	return httpx.Internal(httpx.KindDbError, err)
}

// notice builds a friend notice; the pipeline fills server_id, send_time and send_seq.
func (s *Service) notice(t wire.MsgType, from, to string, content []byte, platform *int32) *wire.Msg {
	m := &wire.Msg{
		SendID:      from,
		ReceiverID:  to,
		LocalID:     ids.New(),
		CreateTime:  s.now().UnixMilli(),
		MsgType:     t,
		ContentType: wire.ContentDefault,
		Content:     content,
	}
	if platform != nil {
		m.Platform = *platform
	}
	return m
}

func (s *Service) send(ctx context.Context, m *wire.Msg) error {
	if err := s.sender.Send(ctx, m, []string{m.ReceiverID}); err != nil {
		return httpx.Internal(httpx.KindInternalServer, fmt.Errorf("friend: send %v to %s: %w", m.MsgType, m.ReceiverID, err))
	}
	return nil
}

// field is a required request field: its JSON name and decoded value.
type field struct {
	name  string
	value *string
}

// required returns a 400 naming the first field that is missing or empty.
func required(fields ...field) error {
	for _, f := range fields {
		if f.value == nil || *f.value == "" {
			return httpx.Bad("missing field `%s`", f.name)
		}
	}
	return nil
}
