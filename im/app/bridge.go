package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sandcat-im/sandcat/appservice"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/observe"
	"github.com/sandcat-im/sandcat/matrix"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// bridgeGroup is the bus consumer group of the Matrix bridge (with Kafka:
// the configured group plus this suffix), apart from the message server's,
// so the bridge reads every message at its own pace.
const bridgeGroup = "appservice"

// startBridge runs the Matrix bridge (role appservice): it serves the
// Application Service API and the bridge's HTTP routes on
// cfg.Appservice.Listen, registers the bridge bot and pings the homeserver
// (a failure is logged with the probable misconfiguration, the bridge keeps
// running), and consumes the bus as its own group to send Sandcat group
// messages into their portals. ctx is the background context that Shutdown
// cancels.
func (a *App) startBridge(ctx context.Context, cfg *config.Config, b *backends, producer *msgserver.Producer) error {
	ac := cfg.Appservice
	if ac == nil {
		return errors.New("app: the appservice role needs an appservice section")
	}
	log := a.log.With("role", "appservice")
	var store storage.AppserviceStore
	switch s := b.rel.(type) {
	case *sqlite.Store:
		store = s.Appservice()
	case *postgres.Store:
		store = s.Appservice()
	default:
		return fmt.Errorf("app: no appservice store for %T", b.rel)
	}
	br, err := matrix.New(matrix.Options{
		Config: matrix.Config{
			HomeserverURL: ac.HomeserverURL, ServerName: ac.HomeserverName, ASToken: ac.ASToken,
			BotLocalpart: ac.SenderLocalpart, UserPrefix: ac.UserPrefix, AliasPrefix: ac.AliasPrefix,
			SeqStep: cfg.SeqStep(),
		},
		Store: store, Users: b.rel, Groups: b.rel, Sender: producer.Notices(), Members: b.members, Blobs: b.blobs, Log: log,
	})
	if err != nil {
		return err
	}
	srv, err := appservice.New(appservice.Config{
		ID: ac.ID, HSToken: ac.HSToken, ASToken: ac.ASToken, HomeserverURL: ac.HomeserverURL,
	}, store, br, log)
	if err != nil {
		return err
	}
	secret, err := jwtSecret(cfg, a.log)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokens(secret, b.revocations, nil)
	if err != nil {
		return err
	}
	r := mux.NewRouter()
	r.Use(a.metrics.Middleware)
	// An appservice process alone has no other listener: health and
	// metrics are here too.
	r.HandleFunc("/health", observe.Health).Methods(http.MethodGet)
	r.Handle("/ready", observe.Ready(b.checks, 3*time.Second)).Methods(http.MethodGet)
	r.Handle("/metrics", a.metrics.Handler()).Methods(http.MethodGet)
	br.Register(r, httpx.RequireUser(tokens, log))
	r.NotFoundHandler = srv // /_matrix/app/v1/... and the legacy paths
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return fmt.Errorf("app: appservice listen: %w", err)
	}
	a.serve(ln, r)

	// Check the link with the homeserver in the background, until it works:
	// a homeserver that starts after Sandcat, or a configuration fixed on
	// its side, is picked up without a restart.
	a.goBackground(ctx, "homeserver check", func(ctx context.Context) error {
		return checkHomeserver(ctx, br, srv, ac.HomeserverURL, log)
	})

	a.goBackground(ctx, "puppet profiles", func(ctx context.Context) error {
		return br.SyncProfiles(ctx, time.Duration(ac.ProfileSyncSeconds)*time.Second)
	})

	group := bridgeGroup
	if cfg.Kafka != nil {
		group = cfg.Kafka.Group + "-" + bridgeGroup
	}
	a.goBackground(ctx, "matrix bridge", func(ctx context.Context) error {
		return b.bus.Consume(ctx, group, br.HandleRecords)
	})
	return nil
}

// checkHomeserver registers the bridge bot and pings the homeserver (which
// also makes it resend the transactions it holds for us), retrying with
// backoff until both work. Failures are logged with the probable
// misconfiguration; the bridge keeps running meanwhile.
func checkHomeserver(ctx context.Context, br *matrix.Bridge, srv *appservice.Server, hsURL string, log *slog.Logger) error {
	backoff := 2 * time.Second
	for {
		err := tryHomeserver(ctx, br, srv, hsURL, log)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		log.Error("the bridge and the homeserver cannot talk; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Minute)
	}
}

func tryHomeserver(ctx context.Context, br *matrix.Bridge, srv *appservice.Server, hsURL string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := br.Start(ctx); err != nil {
		return err
	}
	d, err := srv.Ping(ctx)
	switch {
	case errors.Is(err, appservice.ErrPingUnsupported):
		log.Warn("the homeserver has no appservice ping: the homeserver→bridge direction is unchecked", "err", err)
		return nil
	case err != nil:
		return err
	}
	log.Info("homeserver pinged", "round_trip", d, "homeserver", hsURL)
	return nil
}
