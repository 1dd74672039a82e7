// Package appservice is the homeserver-facing layer of Sandcat's Matrix
// bridge: the Application Service API the homeserver calls (transactions,
// user and alias queries, ping), the startup ping of the homeserver, and the
// registration file. It uses mautrix-go's types (events, transactions,
// registration, errors) but not its AppService, which keeps processed
// transaction ids only in memory and hands events over through channels:
// here a transaction is answered 200 only once its events were handled and
// its id was stored durably, so a retried transaction is a no-op.
package appservice

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Handler is what the bridge provides to the appservice layer.
type Handler interface {
	// HandleEvents receives the new timeline and state events of one
	// transaction, in order, with their content parsed where mautrix knows
	// the type (evt.Content.Parsed) and Type.Class set (state when
	// state_key is present). Events already handled in an earlier
	// transaction are left out. A nil return means the events are handled
	// durably (or durably queued): the transaction is then recorded and
	// never delivered again. An error makes the homeserver retry the whole
	// transaction later. Delivery is at least once: a crash between the
	// return and the recording hands the same events over again, so the
	// bridge must tolerate repeats (e.g. by its message-id mapping).
	// Calls never overlap.
	HandleEvents(ctx context.Context, evts []*event.Event) error
	// QueryUser tells whether a user of the appservice's namespace exists;
	// on true the bridge must have registered it on the homeserver
	// before returning.
	QueryUser(ctx context.Context, userID id.UserID) (bool, error)
	// QueryAlias tells whether a room alias of the namespace exists; on true
	// the bridge must have created the room and the alias before returning.
	QueryAlias(ctx context.Context, alias id.RoomAlias) (bool, error)
}

// EphemeralHandler is optionally implemented by a Handler to receive the
// ephemeral events of a transaction (m.typing, m.receipt, m.presence; with
// receive_ephemeral in the registration). They are best-effort: the
// homeserver never resends them, so they are handed over once, after the
// timeline events, and are not deduplicated.
type EphemeralHandler interface {
	HandleEphemeral(ctx context.Context, evts []*event.Event)
}

// TxnStore is the durable dedup state (storage.AppserviceTxns implements it).
type TxnStore interface {
	TxnDone(ctx context.Context, txnID string) (bool, error)
	MarkTxn(ctx context.Context, txnID string) (alreadyDone bool, err error)
	SeenEvent(ctx context.Context, eventID string) (bool, error)
	MarkEvent(ctx context.Context, eventID string) (alreadySeen bool, err error)
}

// DefaultMaxBodyBytes bounds a transaction body. Synapse sends at most 100
// events (65,536 bytes each at most), 100 ephemeral events and 100
// to-device messages in one transaction.
const DefaultMaxBodyBytes = 32 << 20

// Config configures a Server. ID, HSToken, ASToken and HomeserverURL come
// from the `appservice` config section and must match the registration file.
type Config struct {
	ID            string // registration id (used in the ping path)
	HSToken       string // token the homeserver presents to us
	ASToken       string // token we present to the homeserver
	HomeserverURL string // base URL of the homeserver's client-server API
	MaxBodyBytes  int64  // transaction body limit; 0 = DefaultMaxBodyBytes
	// HTTPClient calls the homeserver; nil = a client with a 90 s timeout
	// (the homeserver's own ping of us may take up to 60 s).
	HTTPClient *http.Client
}

// Server answers the homeserver's calls. It is an http.Handler serving
// /_matrix/app/v1/... and the legacy unprefixed paths.
type Server struct {
	cfg   Config
	store TxnStore
	h     Handler
	log   *slog.Logger
	// txnSem serialises transactions: the homeserver keeps one in flight,
	// but a retry can arrive while a timed-out attempt still runs.
	txnSem chan struct{}

	mu    sync.Mutex
	pings map[string]time.Time // transaction ids of pings received (for Ping)
}

// New returns a Server. log may be nil (slog.Default()).
func New(cfg Config, store TxnStore, h Handler, log *slog.Logger) (*Server, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("appservice: id is required")
	case cfg.HSToken == "":
		return nil, errors.New("appservice: hs_token is required")
	case cfg.ASToken == "":
		return nil, errors.New("appservice: as_token is required")
	case store == nil || h == nil:
		return nil, errors.New("appservice: store and handler are required")
	}
	if cfg.HomeserverURL != "" {
		u, err := url.Parse(cfg.HomeserverURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("appservice: homeserver_url %q is not an http(s) URL", cfg.HomeserverURL)
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 90 * time.Second}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		cfg: cfg, store: store, h: h, log: log.With("component", "appservice"),
		txnSem: make(chan struct{}, 1),
		pings:  make(map[string]time.Time),
	}, nil
}

// Prefix is the base path of the Application Service API.
const Prefix = "/_matrix/app/v1"

// ServeHTTP routes the Application Service API. Unknown paths get 404
// M_UNRECOGNIZED, known paths with another method 405 M_UNRECOGNIZED.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	legacy := true
	if rest, ok := strings.CutPrefix(p, Prefix+"/"); ok {
		p, legacy = rest, false
	} else {
		p = strings.TrimPrefix(p, "/")
	}
	kind, rawArg, _ := strings.Cut(p, "/")
	arg, err := url.PathUnescape(rawArg)
	if err != nil || strings.Contains(rawArg, "/") {
		unrecognized(w, http.StatusNotFound)
		return
	}
	type route struct {
		method string
		fn     func(http.ResponseWriter, *http.Request, string)
	}
	var rt route
	switch {
	case kind == "transactions" && arg != "":
		rt = route{http.MethodPut, s.putTransaction}
	case kind == "users" && arg != "":
		rt = route{http.MethodGet, s.getUser}
	case kind == "rooms" && arg != "":
		rt = route{http.MethodGet, s.getRoom}
	case kind == "ping" && arg == "" && !legacy:
		rt = route{http.MethodPost, s.postPing}
	default:
		unrecognized(w, http.StatusNotFound)
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		unrecognized(w, http.StatusMethodNotAllowed)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	rt.fn(w, r, arg)
}

func unrecognized(w http.ResponseWriter, status int) {
	mautrix.MUnrecognized.WithStatus(status).WithMessage("Unrecognized request").Write(w)
}

func writeEmpty(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "{}")
}

// authorized checks the hs_token: `Authorization: Bearer` (spec v1.4+) or
// the legacy `access_token` query parameter; when both are given both must
// match. Missing: 401 M_MISSING_TOKEN; wrong: 403 M_FORBIDDEN.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	var given []string
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			mautrix.MMissingToken.WithMessage("Authorization header is not a Bearer token").Write(w)
			return false
		}
		given = append(given, tok)
	}
	if q := r.URL.Query(); q.Has("access_token") {
		given = append(given, q.Get("access_token"))
	}
	if len(given) == 0 {
		mautrix.MMissingToken.WithMessage("Missing hs_token").Write(w)
		return false
	}
	for _, tok := range given {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.HSToken)) != 1 {
			s.log.Warn("homeserver request with a wrong hs_token refused",
				"path", r.URL.Path, "remote", r.RemoteAddr)
			mautrix.MForbidden.WithMessage("Invalid hs_token").Write(w)
			return false
		}
	}
	return true
}

// readJSON reads a body under the size limit into v, answering the error itself.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		mautrix.MTooLarge.WithMessage("Request body larger than %d bytes", s.cfg.MaxBodyBytes).Write(w)
		return false
	case err != nil:
		mautrix.MBadJSON.WithMessage("Cannot read request body").Write(w)
		return false
	case len(body) == 0 && allowEmpty:
		return true
	}
	if err := json.Unmarshal(body, v); err != nil {
		mautrix.MBadJSON.WithMessage("Request body is not valid JSON: %v", err).Write(w)
		return false
	}
	return true
}

func (s *Server) putTransaction(w http.ResponseWriter, r *http.Request, txnID string) {
	var txn mas.Transaction
	if !s.readJSON(w, r, &txn, false) {
		return
	}
	// Keep handling even if the homeserver gives up waiting: the retry then
	// finds the transaction recorded.
	ctx := context.WithoutCancel(r.Context())
	select {
	case s.txnSem <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-s.txnSem }()
	log := s.log.With("txn_id", txnID)
	if err := s.handleTransaction(ctx, log, txnID, &txn); err != nil {
		log.Error("transaction not handled; the homeserver will retry it", "err", err)
		mautrix.MUnknown.WithMessage("Transaction not handled, retry later").Write(w)
		return
	}
	writeEmpty(w)
}

// txnKey is what a transaction is remembered under: its id and a digest of
// its event ids. Synapse on SQLite numbers transactions from the largest id
// still pending, so after a restart it reuses ids: the same id with other
// events is a new transaction, never a retry to skip.
func txnKey(txnID string, txn *mas.Transaction) string {
	h := sha256.New()
	for _, evt := range txn.Events {
		if evt != nil {
			h.Write([]byte(evt.ID))
			h.Write([]byte{0})
		}
	}
	return txnID + "#" + hex.EncodeToString(h.Sum(nil)[:12])
}

func (s *Server) handleTransaction(ctx context.Context, log *slog.Logger, txnID string, txn *mas.Transaction) error {
	txnID = txnKey(txnID, txn)
	done, err := s.store.TxnDone(ctx, txnID)
	if err != nil {
		return err
	}
	if done {
		log.Debug("transaction already processed: no-op")
		return nil
	}
	fresh := make([]*event.Event, 0, len(txn.Events))
	inTxn := make(map[id.EventID]bool, len(txn.Events))
	for _, evt := range txn.Events {
		if evt == nil {
			continue
		}
		if evt.ID != "" {
			if inTxn[evt.ID] {
				continue
			}
			inTxn[evt.ID] = true
			seen, err := s.store.SeenEvent(ctx, evt.ID.String())
			if err != nil {
				return err
			}
			if seen {
				log.Debug("event already handled: skipped", "event_id", evt.ID)
				continue
			}
		}
		prepare(log, evt, event.UnknownEventType)
		fresh = append(fresh, evt)
	}
	if len(fresh) > 0 {
		if err := s.h.HandleEvents(ctx, fresh); err != nil {
			return fmt.Errorf("appservice: handle %d events: %w", len(fresh), err)
		}
		for _, evt := range fresh {
			if evt.ID == "" {
				continue
			}
			if _, err := s.store.MarkEvent(ctx, evt.ID.String()); err != nil {
				return err
			}
		}
	}
	if _, err := s.store.MarkTxn(ctx, txnID); err != nil {
		return err
	}
	eph := txn.EphemeralEvents
	if eph == nil {
		eph = txn.MSC2409EphemeralEvents
	}
	if eh, ok := s.h.(EphemeralHandler); ok && len(eph) > 0 {
		out := make([]*event.Event, 0, len(eph))
		for _, evt := range eph {
			if evt != nil {
				prepare(log, evt, event.EphemeralEventType)
				out = append(out, evt)
			}
		}
		eh.HandleEphemeral(ctx, out)
	}
	log.Debug("transaction processed", "events", len(txn.Events), "new", len(fresh), "ephemeral", len(eph))
	return nil
}

// prepare sets the type class and parses the content, as mautrix's own
// appservice does; content of unknown types stays raw.
func prepare(log *slog.Logger, evt *event.Event, class event.TypeClass) {
	switch {
	case class == event.EphemeralEventType:
		evt.Type.Class = class
		evt.Mautrix.EventSource = event.SourceEphemeral
	case evt.StateKey != nil:
		evt.Type.Class = event.StateEventType
		evt.Mautrix.EventSource = event.SourceTimeline
	default:
		evt.Type.Class = event.MessageEventType
		evt.Mautrix.EventSource = event.SourceTimeline
	}
	evt.Mautrix.ReceivedAt = time.Now()
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrUnsupportedContentType) &&
		!errors.Is(err, event.ErrContentAlreadyParsed) {
		log.Warn("event content not parsed", "event_id", evt.ID, "type", evt.Type.Type, "err", err)
	}
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, userID string) {
	ok, err := s.h.QueryUser(r.Context(), id.UserID(userID))
	s.answerQuery(w, "user", userID, ok, err)
}

func (s *Server) getRoom(w http.ResponseWriter, r *http.Request, alias string) {
	ok, err := s.h.QueryAlias(r.Context(), id.RoomAlias(alias))
	s.answerQuery(w, "alias", alias, ok, err)
}

func (s *Server) answerQuery(w http.ResponseWriter, what, key string, ok bool, err error) {
	switch {
	case err != nil:
		s.log.Error("homeserver query failed", "kind", what, "key", key, "err", err)
		mautrix.MUnknown.WithMessage("Query of %s failed", what).Write(w)
	case ok:
		writeEmpty(w)
	default:
		mautrix.MNotFound.WithMessage("No such %s", what).Write(w)
	}
}

// maxPings bounds the remembered ping transaction ids.
const maxPings = 64

func (s *Server) postPing(w http.ResponseWriter, r *http.Request, _ string) {
	var req mautrix.ReqAppservicePing
	if !s.readJSON(w, r, &req, true) {
		return
	}
	if req.TxnID != "" {
		s.mu.Lock()
		if len(s.pings) >= maxPings {
			for k := range s.pings { // drop an arbitrary old one
				delete(s.pings, k)
				break
			}
		}
		s.pings[req.TxnID] = time.Now()
		s.mu.Unlock()
	}
	s.log.Debug("ping from the homeserver", "txn_id", req.TxnID)
	writeEmpty(w)
}

// pinged reports (and forgets) whether a ping with txnID came in.
func (s *Server) pinged(txnID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pings[txnID]
	delete(s.pings, txnID)
	return ok
}
