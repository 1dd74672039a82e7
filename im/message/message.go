// Package message serves the /message routes (sandcat-wire.md §2.4): the
// offline pull by seq ranges, the current seqs of a user, and the deletion of
// inbox entries by receiver seq. Every route needs a token of the user it
// names (bug B5 of the original let any token act for anyone).
package message

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/wire"
)

// Inbox is what the routes need of the offline inbox (storage.Inbox).
type Inbox interface {
	Pull(ctx context.Context, userID string, sendStart, sendEnd, start, end int64) ([]wire.Msg, error)
	DeleteBySeqs(ctx context.Context, userID string, seqs []int64) error
}

// Seqs reports a user's current seqs (seq.Allocator): 0 for a user never seen.
type Seqs interface {
	Current(ctx context.Context, userID string) (recv, send int64, err error)
}

// Options are the dependencies of the routes; all are required but Log.
type Options struct {
	Inbox Inbox
	Seqs  Seqs
	// RequireUser authenticates a request and puts its user in the context
	// (httpx.RequireUser).
	RequireUser func(http.Handler) http.Handler
	Log         *slog.Logger
}

// API serves /message.
type API struct {
	inbox       Inbox
	seqs        Seqs
	requireUser func(http.Handler) http.Handler
	log         *slog.Logger
}

// New checks the options and returns the API.
func New(opts Options) (*API, error) {
	if opts.Inbox == nil || opts.Seqs == nil || opts.RequireUser == nil {
		return nil, fmt.Errorf("message: Inbox, Seqs and RequireUser are required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &API{inbox: opts.Inbox, seqs: opts.Seqs, requireUser: opts.RequireUser, log: opts.Log}, nil
}

// Register adds the routes to r:
//
//	POST   /message                 GetDbMessagesRequest -> [Msg]
//	GET    /message/seq/{user_id}   -> {"seq", "send_seq"}
//	DELETE /message                 DelMsgRequest -> 200, empty body
func (a *API) Register(r *mux.Router) {
	h := func(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
		return a.requireUser(httpx.Handler{Log: a.log, Fn: fn})
	}
	r.Handle("/message", h(a.pull)).Methods(http.MethodPost)
	r.Handle("/message", h(a.delete)).Methods(http.MethodDelete)
	r.Handle("/message/seq/{user_id}", h(a.seq)).Methods(http.MethodGet)
}

// GetDbMessagesRequest is the body of POST /message: the exclusive-start,
// inclusive-end ranges of send seqs and recv seqs to pull.
type GetDbMessagesRequest struct {
	UserID    string `json:"user_id"`
	SendStart int64  `json:"send_start"`
	SendEnd   int64  `json:"send_end"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
}

// DelMsgRequest is the body of DELETE /message: receiver seqs, not server ids.
type DelMsgRequest struct {
	UserID string  `json:"user_id"`
	MsgID  []int64 `json:"msg_id"`
}

// SeqResponse is the answer of GET /message/seq/{user_id}.
type SeqResponse struct {
	Seq     int64 `json:"seq"`
	SendSeq int64 `json:"send_seq"`
}

func (a *API) pull(w http.ResponseWriter, r *http.Request) error {
	var req GetDbMessagesRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := httpx.SameUser(r, req.UserID); err != nil {
		return err
	}
	switch {
	case req.SendStart < 0 || req.SendEnd < 0 || req.Start < 0 || req.End < 0:
		return httpx.Bad("seq ranges must not be negative")
	case req.SendStart > req.SendEnd:
		return httpx.Bad("send_start %d is above send_end %d", req.SendStart, req.SendEnd)
	case req.Start > req.End:
		return httpx.Bad("start %d is above end %d", req.Start, req.End)
	}
	msgs, err := a.inbox.Pull(r.Context(), req.UserID, req.SendStart, req.SendEnd, req.Start, req.End)
	if err != nil {
		return httpx.Internal(httpx.KindDbError, err)
	}
	size := 2
	for i := range msgs {
		size += 320 + len(msgs[i].SendID) + len(msgs[i].ReceiverID) + len(msgs[i].LocalID) +
			len(msgs[i].ServerID) + len(msgs[i].GroupID) + len(msgs[i].Avatar) + len(msgs[i].Nickname) +
			4*len(msgs[i].Content)
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = msgs[i].AppendJSON(b)
	}
	b = append(b, ']')
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

func (a *API) seq(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["user_id"]
	if err := httpx.SameUser(r, id); err != nil {
		return err
	}
	recv, send, err := a.seqs.Current(r.Context(), id)
	if err != nil {
		return httpx.Internal(httpx.KindDbError, err)
	}
	httpx.WriteJSON(w, SeqResponse{Seq: recv, SendSeq: send})
	return nil
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	var req DelMsgRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := httpx.SameUser(r, req.UserID); err != nil {
		return err
	}
	if err := a.inbox.DeleteBySeqs(r.Context(), req.UserID, req.MsgID); err != nil {
		return httpx.Internal(httpx.KindDbError, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
