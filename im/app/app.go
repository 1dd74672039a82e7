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
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// Listeners lets a caller (tests, socket activation) hand in bound listeners;
// a nil listener is bound from the configuration.
type Listeners struct {
	API       net.Listener
	WebSocket net.Listener
	Version   string // the binary's version, registered in Consul
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
	version         string
	deregs          []func(context.Context) error // Consul registrations, undone first
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
	a, err := Start(ctx, cfg, log, Listeners{Version: version})
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
	bctx, cancel := context.WithCancel(context.Background())
	a := &App{cfg: cfg, log: log, metrics: observe.NewMetrics(), cancel: cancel, errc: make(chan error, 8), version: lns.Version}
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
	b, err := a.openBackends(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(secret, b.revocations, nil)
	if err != nil {
		return nil, err
	}
	producer := msgserver.NewProducer(b.bus, b.seqs)
	requireUser := httpx.RequireUser(tokens, log)
	disc, err := a.openDiscovery(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if disc != nil {
		disc.check = backendsCheck(b.checks)
	}

	// Gateway role: the WebSocket listener, and the internal push listener
	// when message servers run in other processes.
	if cfg.Runs(config.RoleGateway) {
		gwID := cfg.Websocket.GatewayID
		if gwID == "" {
			gwID = "local"
			if disc != nil {
				gwID = disc.registrar.Instance()
			}
		}
		gcfg := gateway.Config{
			ID:             gwID,
			Verifier:       tokens,
			Sender:         producer,
			Members:        b.members,
			Blocks:         b.blocks,
			Logger:         log.With("role", "gateway"),
			PingInterval:   time.Duration(cfg.Websocket.PingInterval) * time.Second,
			SendQueueBytes: cfg.Websocket.SendQueueKiB << 10,
		}
		if b.routes != nil {
			gcfg.Routes = b.routes
		}
		gw, err := gateway.New(gcfg)
		if err != nil {
			return nil, err
		}
		a.gw = gw
		if err := a.metrics.Registry.Register(newGatewayCollector(gw)); err != nil {
			return nil, fmt.Errorf("app: gateway metrics: %w", err)
		}
		r := mux.NewRouter()
		// Not behind the metrics middleware: its ResponseWriter cannot be
		// hijacked, which the WebSocket upgrade needs.
		r.Methods(http.MethodGet).Path("/ws/{user_id}/conn/{pointer_id}/{platform}/{token}").Handler(gw)
		r.Handle("/health", a.metrics.Middleware(http.HandlerFunc(observe.Health))).Methods(http.MethodGet)
		// A gateway-only process has no API listener: its metrics are here.
		r.Handle("/metrics", a.metrics.Handler()).Methods(http.MethodGet)
		ln, err := listen(lns.WebSocket, cfg.Websocket.Host, cfg.Websocket.Port)
		if err != nil {
			return nil, err
		}
		a.wsAddr = ln.Addr().String()
		a.serve(ln, r)
		// Closers run in reverse: this one before Redis is closed, so the
		// connections' routes are removed rather than left to expire.
		a.closers = append(a.closers, func() error {
			gw.Close()
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			return gw.Drain(ctx)
		})
		if b.routes != nil {
			a.goBackground(bctx, "routes", func(ctx context.Context) error { return refreshRoutes(ctx, gw, b.routes, log) })
		}
		if disc != nil {
			if err := a.serveGatewayPush(ctx, cfg, disc, gw, secret); err != nil {
				return nil, err
			}
		}
	}

	// Message server role: the consumer that stores and pushes, and the
	// maintenance jobs.
	if cfg.Runs(config.RoleMsgServer) {
		pusher, err := a.pusher(ctx, cfg, b, disc, secret)
		if err != nil {
			return nil, err
		}
		consumer, err := msgserver.NewConsumer(msgserver.ConsumerConfig{
			Bus:     b.bus,
			Group:   kafkaGroup(cfg),
			Inbox:   b.inbox,
			History: b.history,
			Batch:   b.batch,
			Seqs:    b.seqs,
			Members: b.members,
			Pusher:  pusher,
			Logger:  log.With("role", "msgserver"),
		})
		if err != nil {
			return nil, err
		}
		a.goBackground(bctx, "consumer", consumer.Run)
		a.goBackground(bctx, "maintenance", func(ctx context.Context) error {
			return maintain(ctx, cfg, log, b.inbox, b.history)
		})
		if days := cfg.Retention.FileDays; days > 0 {
			cl, err := cleanup.New(cleanup.Options{Store: b.blobs, Refs: b.refs,
				Retention: time.Duration(days) * 24 * time.Hour, Logger: log})
			if err != nil {
				return nil, err
			}
			a.goBackground(bctx, "file cleanup", cl.Run)
		}
		if !cfg.Runs(config.RoleAPI) && !cfg.Runs(config.RoleGateway) {
			// No listener of its own: serve health and metrics (the bus's
			// dead-letter counter among them) on metrics.listen.
			ln, err := net.Listen("tcp", cfg.Metrics.Listen)
			if err != nil {
				return nil, fmt.Errorf("app: metrics listener: %w", err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /health", observe.Health)
			mux.Handle("GET /metrics", a.metrics.Handler())
			a.serve(ln, mux)
		}
		if disc != nil {
			if err := disc.register(ctx, a, discovery.Registration{Service: discovery.ServiceMsgServer,
				Address: ""}); err != nil {
				return nil, err
			}
		}
	}

	// Appservice role: the Matrix bridge, its own consumer group on the bus.
	if cfg.Runs(config.RoleAppservice) {
		if err := a.startBridge(bctx, cfg, b, producer); err != nil {
			return nil, err
		}
	}

	// API role: every HTTP route.
	if cfg.Runs(config.RoleAPI) {
		r := mux.NewRouter()
		r.Use(a.metrics.Middleware)
		r.HandleFunc("/health", observe.Health).Methods(http.MethodGet)
		r.Handle("/ready", observe.Ready(b.checks, 3*time.Second)).Methods(http.MethodGet)
		r.Handle("/metrics", a.metrics.Handler()).Methods(http.MethodGet)
		ln, err := listen(lns.API, cfg.Server.Host, cfg.Server.Port)
		if err != nil {
			return nil, err
		}
		a.apiAddr = ln.Addr().String()
		pick := discovery.NewStaticWSPicker(a.advertisedWS()).Pick
		if disc != nil && a.gw == nil {
			w, err := disc.watch(ctx, a, discovery.ServiceGateway)
			if err != nil {
				return nil, err
			}
			p, err := discovery.NewWSPicker(w, cfg.Server.WSLBStrategy, cfg.Websocket.Protocol)
			if err != nil {
				return nil, err
			}
			pick = p.Pick
		}

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
			Users:   b.rel,
			Tokens:  tokens,
			Codes:   b.codes,
			States:  b.states,
			Mailer:  mailer,
			WSAddr:  pick,
			Avatars: blob.AvatarPutter{Store: b.blobs},
			GitHub:  oauthProvider(cfg, "github"),
			Google:  oauthProvider(cfg, "google"),
			Log:     log,
		})
		if err != nil {
			return nil, err
		}
		// Notices from the API have no originating connection: every device
		// of the actor gets the echo (Producer.Notices).
		fr, err := friend.New(friend.Options{Store: b.blocks, Users: b.rel, Sender: producer.Notices(), RequireUser: requireUser, Log: log})
		if err != nil {
			return nil, err
		}
		gr, err := group.New(group.Options{Store: b.rel, Sender: producer.Notices(), RequireUser: requireUser, Log: log})
		if err != nil {
			return nil, err
		}
		msgs, err := message.New(message.Options{Inbox: b.inbox, Seqs: b.seqs, RequireUser: requireUser, Log: log})
		if err != nil {
			return nil, err
		}
		files, err := file.New(file.Options{Blobs: b.blobs, Log: log, RequireUser: requireUser})
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
		if disc != nil {
			addr := cfg.Server.Advertise
			if addr == "" {
				addr = a.apiAddr
			}
			if err := disc.register(ctx, a, discovery.Registration{Service: discovery.ServiceAPI, Address: addr}); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

// drainTimeout bounds the wait at shutdown for the gateway's connections to
// end (their Close frames are written with a 10 s write timeout).
const drainTimeout = 15 * time.Second

func kafkaGroup(cfg *config.Config) string {
	if cfg.Kafka != nil {
		return cfg.Kafka.Group
	}
	return ""
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
	for _, dereg := range a.deregs {
		if err := dereg(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	a.deregs = nil
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
