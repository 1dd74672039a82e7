package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sandcat-im/sandcat/im/cache"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/observe"
)

// consulState is the Consul side of a process: its registrations and the
// services it watches. Everything registered is deregistered first at shutdown.
type consulState struct {
	client    *api.Client
	registrar *discovery.Registrar
	version   string
	// check is the health of the backends this process needs: a role whose
	// database, cache or bus is unreachable turns critical in Consul.
	check func(ctx context.Context) error
}

// openDiscovery connects to Consul when the configuration has a consul section.
func (a *App) openDiscovery(_ context.Context, cfg *config.Config, log *slog.Logger) (*consulState, error) {
	c := cfg.Consul
	if c == nil {
		return nil, nil
	}
	client, err := discovery.NewConsulClient(c.Address, c.Token)
	if err != nil {
		return nil, err
	}
	reg, err := discovery.NewRegistrar(discovery.RegistrarOptions{
		Client:          client,
		Instance:        cfg.Websocket.GatewayID,
		Version:         a.version,
		Tags:            c.Tags,
		TTL:             time.Duration(c.TTL) * time.Second,
		DeregisterAfter: time.Duration(c.DeregisterAfter) * time.Second,
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	return &consulState{client: client, registrar: reg, version: a.version}, nil
}

// backendsCheck fails when any configured backend does not answer.
func backendsCheck(checks []observe.Check) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for _, c := range checks {
			if err := c.Ping(ctx); err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
		}
		return nil
	}
}

// register registers one role; its deregistration runs first at shutdown.
func (d *consulState) register(ctx context.Context, a *App, r discovery.Registration) error {
	if r.Check == nil {
		r.Check = d.check
	}
	dereg, err := d.registrar.Register(ctx, r)
	if err != nil {
		return fmt.Errorf("app: register %s in consul: %w", r.Service, err)
	}
	a.deregs = append(a.deregs, dereg)
	return nil
}

// watch follows the healthy instances of a service until shutdown.
func (d *consulState) watch(ctx context.Context, a *App, service string) (*discovery.Watcher, error) {
	w, err := discovery.Watch(ctx, d.client, service, discovery.WatchOptions{Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("app: watch %s in consul: %w", service, err)
	}
	a.closers = append(a.closers, func() error { w.Close(); return nil })
	return w, nil
}

func pushSecret(cfg *config.Config, jwtSecret []byte) string {
	if cfg.Websocket.PushSecret != "" {
		return cfg.Websocket.PushSecret
	}
	return gateway.DerivePushSecret(jwtSecret)
}

// serveGatewayPush serves the internal push endpoint of a gateway and
// registers the gateway (client-facing, advertised address) and its push
// endpoint in Consul.
func (a *App) serveGatewayPush(ctx context.Context, cfg *config.Config, d *consulState, gw *gateway.Gateway, jwtSecret []byte) error {
	h, err := gateway.NewPushHandler(gw, gateway.PushHandlerOptions{
		GatewayID: gw.ID(), Secret: pushSecret(cfg, jwtSecret), Logger: a.log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Websocket.PushListen)
	if err != nil {
		return fmt.Errorf("app: listen for pushes on %s: %w", cfg.Websocket.PushListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(gateway.PushRoute, h)
	mux.Handle("GET /health", http.HandlerFunc(observe.Health))
	mux.Handle("GET /metrics", a.metrics.Handler())
	a.serve(ln, mux)

	wsHost := cfg.Websocket.Advertise
	if wsHost == "" {
		wsHost = a.wsAddr
	}
	pushAddr := cfg.Websocket.PushAdvertise
	if pushAddr == "" {
		pushAddr = ln.Addr().String()
		if host, port, err := net.SplitHostPort(pushAddr); err == nil && net.ParseIP(host).IsUnspecified() {
			name, err := os.Hostname()
			if err != nil {
				return fmt.Errorf("app: websocket.push_advertise is needed: %w", err)
			}
			pushAddr = net.JoinHostPort(name, port)
		}
	}
	meta := map[string]string{discovery.MetaGatewayID: gw.ID()}
	gwMeta := map[string]string{discovery.MetaGatewayID: gw.ID(), discovery.MetaWSAddr: a.advertisedWS()}
	if err := d.register(ctx, a, discovery.Registration{Service: discovery.ServiceGateway, Address: wsHost,
		Tags: cfg.Websocket.Tags, Meta: gwMeta}); err != nil {
		return err
	}
	return d.register(ctx, a, discovery.Registration{Service: discovery.ServiceGatewayPush, Address: pushAddr, Meta: meta})
}

// pusher delivers to the gateways that hold the recipients: found through
// the Redis online routes (or the local gateway alone), reached by a
// function call (local gateway) or the push link (Consul).
func (a *App) pusher(ctx context.Context, cfg *config.Config, b *backends, d *consulState, jwtSecret []byte) (*msgserver.Pusher, error) {
	var router msgserver.Router
	var client msgserver.GatewayClient
	if a.gw != nil {
		static := discovery.NewStatic(a.gw.ID(), a.gw)
		router, client = static, static
	}
	if b.routes != nil {
		router = b.routes
	}
	if d != nil {
		w, err := d.watch(ctx, a, discovery.ServiceGatewayPush)
		if err != nil {
			return nil, err
		}
		remote, err := discovery.NewRemote(discovery.RemoteOptions{Gateways: w, Secret: pushSecret(cfg, jwtSecret), Logger: a.log})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() error { remote.Close(); return nil })
		client = remote
		if a.gw != nil {
			client = discovery.NewLocalFirst(a.gw.ID(), a.gw, remote)
		}
	}
	if router == nil || client == nil {
		return nil, errors.New("app: a msgserver without a gateway in its process needs redis (online routes) and consul (push link)")
	}
	if a.gw == nil && b.routes == nil {
		return nil, errors.New("app: a msgserver without a gateway in its process needs redis for the online routes")
	}
	return msgserver.NewPusher(router, client, a.log), nil
}

// routesCheck is how often a gateway checks that Redis still holds its
// routes (one EXISTS): after Redis lost them, pushes to its users resume
// within this delay rather than at the next TTL/3 refresh.
const routesCheck = 2 * time.Second

// refreshRoutes rewrites this gateway's online routes every TTL/3, so the
// routes of a dead gateway expire, and at once when Redis lost them (checked
// every routesCheck). A route another gateway took over (the same user and
// platform connected there) is knocked off here, as a second connection on
// one gateway is. At shutdown the gateway's routes are removed at once.
func refreshRoutes(ctx context.Context, gw *gateway.Gateway, routes *cache.Routes, log *slog.Logger) error {
	entries := func() []cache.RouteEntry {
		conns := gw.Connections()
		out := make([]cache.RouteEntry, len(conns))
		for i, c := range conns {
			out[i] = cache.RouteEntry{UserID: c.UserID, Platform: c.Platform}
		}
		return out
	}
	every := routes.TTL() / 3
	t := time.NewTicker(min(every, routesCheck))
	defer t.Stop()
	var last time.Time // of the last successful refresh
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := routes.RemoveAll(rctx, gw.ID(), entries()); err != nil {
				log.Warn("gateway: removing routes at shutdown failed; they expire", "err", err)
			}
			return nil
		case <-t.C:
		}
		if time.Since(last) < every {
			present, err := routes.Present(ctx, gw.ID())
			if err != nil || present {
				continue // a failing Redis: the refresh is tried when it is due
			}
			if !last.IsZero() {
				log.Warn("gateway: Redis lost the online routes; writing them again")
			}
		}
		lost, err := routes.Refresh(ctx, gw.ID(), entries())
		if err != nil {
			log.Warn("gateway: route refresh failed", "err", err)
		} else {
			last = time.Now()
		}
		for _, e := range lost {
			gw.KnockOff(e.UserID, e.Platform)
		}
	}
}
