// Package app wires Sandcat's pieces for the roles a process runs and the
// backends its configuration selects: it opens the stores, builds the HTTP
// API, the WebSocket gateway and the message pipeline, serves them, and shuts
// them down gracefully.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/sandcat-im/sandcat/im/account"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/bus/localbus"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/file"
	"github.com/sandcat-im/sandcat/im/friend"
	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/group"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/mail"
	"github.com/sandcat-im/sandcat/im/message"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/observe"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/local"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// Listeners lets a caller (tests, socket activation) hand in bound listeners;
// a nil listener is bound from the configuration.
type Listeners struct {
	API       net.Listener
	WebSocket net.Listener
}

// App is a running Sandcat process.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *observe.Metrics

	closers []func() error
	servers []*http.Server
	lns     []net.Listener
	bg      sync.WaitGroup
	cancel  context.CancelFunc
	errc    chan error

	apiAddr, wsAddr string
	gw              *gateway.Gateway
}

// relational is what both the SQLite and the PostgreSQL store provide.
type relational interface {
	storage.Users
	storage.Friends
	storage.Groups
	Ping(ctx context.Context) error
	Close() error
}

// Run starts the configured roles and blocks until ctx is cancelled, then
// shuts down gracefully.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, version string) error {
	a, err := Start(ctx, cfg, log, Listeners{})
	if err != nil {
		return err
	}
	log.Info("sandcat started", "version", version, "component", cfg.Component,
		"embedded", cfg.Embedded(), "api", a.apiAddr, "websocket", a.wsAddr)
	select {
	case <-ctx.Done():
	case err = <-a.errc:
		log.Error("a server failed; shutting down", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if serr := a.Shutdown(sctx); serr != nil && err == nil {
		err = serr
	}
	return err
}

// Migrate opens the relational store, which applies the migrations, and closes it.
func Migrate(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	st, err := openRelational(ctx, cfg)
	if err != nil {
		return err
	}
	log.Info("migrations applied", "backend", backendName(cfg))
	return st.Close()
}

func backendName(cfg *config.Config) string {
	if cfg.DB.Postgres != nil {
		return "postgres"
	}
	return "sqlite"
}

// APIAddr is the address the HTTP API listens on ("" if this process has no api role).
func (a *App) APIAddr() string { return a.apiAddr }

// WSAddr is the address the WebSocket gateway listens on ("" without the gateway role).
func (a *App) WSAddr() string { return a.wsAddr }

// Start opens everything and starts serving; it returns once the listeners are bound.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger, lns Listeners) (_ *App, err error) {
	if !cfg.Embedded() {
		if cfg.DB.MongoDB != nil || cfg.Redis != nil || cfg.Kafka != nil || cfg.OSS != nil || cfg.Consul != nil {
			return nil, errors.New("app: the MongoDB, Redis, Kafka, MinIO and Consul backends are not available in this release; " +
				"remove those sections (PostgreSQL alone is supported)")
		}
	}
	bctx, cancel := context.WithCancel(context.Background())
	a := &App{cfg: cfg, log: log, metrics: observe.NewMetrics(), cancel: cancel, errc: make(chan error, 4)}
	defer func() {
		if err != nil {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = a.Shutdown(sctx)
		}
	}()

	secret, err := jwtSecret(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := openRelational(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, st.Close)
	checks := []observe.Check{{Name: backendName(cfg), Ping: st.Ping}}

	tokens, err := auth.NewTokens(secret, st, nil)
	if err != nil {
		return nil, err
	}
	ceilings, inbox, history := seqInboxHistory(st)
	if inbox == nil {
		// No MongoDB: the embedded inbox, in the SQLite file under the data directory.
		lite, err := sqlite.Open(ctx, cfg.SQLitePath())
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, lite.Close)
		inbox = lite.Inbox()
	}
	if p, ok := st.(*postgres.Store); ok {
		if err := p.History().EnsurePartitions(ctx, time.Now(), 8); err != nil {
			return nil, fmt.Errorf("app: history partitions: %w", err)
		}
	}
	seqs, err := seq.New(ceilings, seq.Options{Step: cfg.SeqStep(), Log: log})
	if err != nil {
		return nil, err
	}
	busLog, err := localbus.Open(ctx, filepath.Join(cfg.DataDir, "bus.db"), localbus.Options{})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, busLog.Close)
	producer := msgserver.NewProducer(busLog, seqs)
	members := msgserver.NewMemberCache(st, time.Minute, 100_000)

	requireUser := httpx.RequireUser(tokens, log)

	// Gateway role: the WebSocket listener and the in-process delivery route.
	if cfg.Runs(config.RoleGateway) {
		gw, err := gateway.New(gateway.Config{
			Verifier:       tokens,
			Sender:         producer,
			Members:        members,
			Blocks:         st,
			Logger:         log.With("role", "gateway"),
			PingInterval:   time.Duration(cfg.Websocket.PingInterval) * time.Second,
			SendQueueBytes: cfg.Websocket.SendQueueKiB << 10,
		})
		if err != nil {
			return nil, err
		}
		a.gw = gw
		r := mux.NewRouter()
		// Not behind the metrics middleware: its ResponseWriter cannot be
		// hijacked, which the WebSocket upgrade needs.
		r.Methods(http.MethodGet).Path("/ws/{user_id}/conn/{pointer_id}/{platform}/{token}").Handler(gw)
		r.Handle("/health", a.metrics.Middleware(http.HandlerFunc(observe.Health))).Methods(http.MethodGet)
		ln, err := listen(lns.WebSocket, cfg.Websocket.Host, cfg.Websocket.Port)
		if err != nil {
			return nil, err
		}
		a.wsAddr = ln.Addr().String()
		a.serve(ln, r)
		a.closers = append(a.closers, func() error { gw.Close(); return nil })
	}

	// Message server role: the consumer that stores and pushes.
	if cfg.Runs(config.RoleMsgServer) {
		if a.gw == nil {
			return nil, errors.New("app: msgserver without a gateway needs remote discovery (Consul), not in this release")
		}
		static := discovery.NewStatic("local", a.gw)
		consumer, err := msgserver.NewConsumer(msgserver.ConsumerConfig{
			Bus:     busLog,
			Inbox:   inbox,
			History: history,
			Seqs:    seqs,
			Members: members,
			Pusher:  msgserver.NewPusher(static, static, log),
			Logger:  log.With("role", "msgserver"),
		})
		if err != nil {
			return nil, err
		}
		a.goBackground(bctx, "consumer", consumer.Run)
		a.goBackground(bctx, "maintenance", func(ctx context.Context) error {
			return maintain(ctx, cfg, log, inbox, history)
		})
	}

	// API role: every HTTP route.
	if cfg.Runs(config.RoleAPI) {
		blobs, err := local.Open(ctx, filepath.Join(cfg.DataDir, "files"))
		if err != nil {
			return nil, err
		}
		r := mux.NewRouter()
		r.Use(a.metrics.Middleware)
		r.HandleFunc("/health", observe.Health).Methods(http.MethodGet)
		r.Handle("/ready", observe.Ready(checks, 3*time.Second)).Methods(http.MethodGet)
		r.Handle("/metrics", a.metrics.Handler()).Methods(http.MethodGet)
		ln, err := listen(lns.API, cfg.Server.Host, cfg.Server.Port)
		if err != nil {
			return nil, err
		}
		a.apiAddr = ln.Addr().String()
		wsAddr := a.advertisedWS()

		var mailer account.Mailer = mail.NewLog(log)
		if cfg.Mail.Server != "" {
			m, err := mail.NewSMTP(mail.SMTPOptions{
				Server: cfg.Mail.Server, TLS: cfg.Mail.TLS, Account: cfg.Mail.Account, Password: cfg.Mail.Password,
				From: cfg.Mail.From, TemplatePath: mailTemplate(cfg.Mail),
			})
			if err != nil {
				return nil, err
			}
			mailer = m
		}
		acct, err := account.New(account.Options{
			Users:   st,
			Tokens:  tokens,
			Codes:   auth.NewMemoryCodes(nil),
			States:  auth.NewMemoryCodes(nil),
			Mailer:  mailer,
			WSAddr:  func(context.Context) (string, error) { return wsAddr, nil },
			Avatars: blob.AvatarPutter{Store: blobs},
			GitHub:  oauthProvider(cfg, "github"),
			Google:  oauthProvider(cfg, "google"),
			Log:     log,
		})
		if err != nil {
			return nil, err
		}
		fr, err := friend.New(friend.Options{Store: st, Users: st, Sender: producer.Notices(), RequireUser: requireUser, Log: log})
		if err != nil {
			return nil, err
		}
		gr, err := group.New(group.Options{Store: st, Sender: producer.Notices(), RequireUser: requireUser, Log: log})
		if err != nil {
			return nil, err
		}
		msgs, err := message.New(message.Options{Inbox: inbox, Seqs: seqs, RequireUser: requireUser, Log: log})
		if err != nil {
			return nil, err
		}
		files, err := file.New(file.Options{Blobs: blobs, Log: log, RequireUser: requireUser})
		if err != nil {
			return nil, err
		}
		// The routes are served bare, as the clients call them, and under /api
		// as the web client's dev proxy forwards them.
		acct.Register(r) // mounts /user and /api/user itself
		for _, sub := range []*mux.Router{r.PathPrefix("/api").Subrouter(), r} {
			fr.Register(sub)
			gr.Register(sub)
			msgs.Register(sub)
			files.Register(sub)
		}
		r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpx.WriteError(w, r, log, httpx.NotFound())
		})
		r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpx.WriteError(w, r, log, httpx.Errorf(http.StatusMethodNotAllowed, httpx.KindBadRequest, "method %s not allowed", r.Method))
		})
		a.serve(ln, r)
	}
	return a, nil
}

// advertisedWS is the ws_addr clients get at login.
func (a *App) advertisedWS() string {
	host := a.cfg.Websocket.Advertise
	if host == "" {
		host = a.wsAddr
	}
	if host == "" {
		host = net.JoinHostPort(a.cfg.Websocket.Host, fmt.Sprint(a.cfg.Websocket.Port))
	}
	return a.cfg.Websocket.Protocol + "://" + host + "/ws"
}

func listen(ln net.Listener, host string, port int) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("app: listen: %w", err)
	}
	return l, nil
}

func (a *App) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.servers = append(a.servers, srv)
	a.lns = append(a.lns, ln)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errc <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
	}()
}

func (a *App) goBackground(ctx context.Context, name string, fn func(context.Context) error) {
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("background task stopped", "task", name, "err", err)
			a.errc <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// Shutdown stops accepting, finishes requests in flight, stops the pipeline
// and closes the stores, in that order.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	for _, s := range a.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	a.cancel()
	a.bg.Wait()
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}

func openRelational(ctx context.Context, cfg *config.Config) (relational, error) {
	if p := cfg.DB.Postgres; p != nil {
		return postgres.Open(ctx, p.URL(), int32(p.MaxConnections))
	}
	return sqlite.Open(ctx, cfg.SQLitePath())
}

func seqInboxHistory(st relational) (storage.SeqCeilings, storage.Inbox, storage.History) {
	switch s := st.(type) {
	case *postgres.Store:
		return s.SeqCeilings(), nil, s.History()
	case *sqlite.Store:
		return s.SeqCeilings(), s.Inbox(), s.History()
	}
	return nil, nil, nil
}

// jwtSecret returns the configured secret, or the one kept in the data
// directory, generating it on first start.
func jwtSecret(cfg *config.Config, log *slog.Logger) ([]byte, error) {
	if cfg.Server.JWTSecret != "" {
		return []byte(cfg.Server.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "jwt_secret")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= 32 {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("app: %s is too short: delete it to generate a new secret", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("app: read %s: %w", path, err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(b[:])
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("app: create %s: %w", cfg.DataDir, err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("app: write %s: %w", path, err)
	}
	log.Info("generated the JWT secret", "path", path)
	return []byte(s), nil
}

func mailTemplate(m config.Mail) string {
	if m.TempPath == "" && m.TempFile == "" {
		return ""
	}
	return filepath.Join(m.TempPath, m.TempFile)
}

func oauthProvider(cfg *config.Config, name string) *account.OAuthProvider {
	o := cfg.Server.OAuth2
	if o == nil {
		return nil
	}
	c := o.Github
	if name == "google" {
		c = o.Google
	}
	if c == nil {
		return nil
	}
	return &account.OAuthProvider{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, AuthURL: c.AuthURL, TokenURL: c.TokenURL,
		RedirectURL: c.RedirectURL, UserInfoURL: c.UserInfoURL, EmailURL: c.EmailURL,
	}
}
