package discovery

// Consul registration: every process registers each role it serves, with a
// unique instance id (bug B12 of the original: "hostname-name" collided for
// two instances on one host), its advertised address (not the bind address),
// tags, version meta and a TTL health check that the process refreshes, and
// deregisters on shutdown.
//
// Why a TTL check rather than an HTTP check on /health: the agent does not
// need to reach the process (in containers the agent often cannot reach the
// advertised address, which is meant for clients); roles without a listener
// (msgserver) get a check too; a process that is shutting down marks itself
// critical at once instead of waiting for the agent's next probe; and the
// process decides what "healthy" means (Registration.Check can probe the
// role's own dependencies before each refresh). A process that hangs or dies
// stops refreshing and turns critical after one TTL; Consul removes it
// entirely after DeregisterAfter.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Service names registered in Consul.
const (
	ServiceAPI         = "sandcat-api"
	ServiceGateway     = "sandcat-gateway"      // client-facing WebSocket address (advertised)
	ServiceGatewayPush = "sandcat-gateway-push" // the gateway's internal push endpoint
	ServiceMsgServer   = "sandcat-msgserver"
	ServiceAppservice  = "sandcat-appservice"
)

// Meta keys of the registrations.
const (
	MetaVersion   = "version"    // the binary's version
	MetaInstance  = "instance"   // the process's instance id (NewInstanceID)
	MetaGatewayID = "gateway_id" // on sandcat-gateway and sandcat-gateway-push: the id in the online routes
	MetaWSAddr    = "ws_addr"    // on sandcat-gateway: the ws_addr clients get, e.g. wss://im.example.com/ws
)

// NewConsulClient returns a client of the Consul agent's HTTP API at address
// (host:port, or a URL with scheme) with an optional ACL token. It does not
// contact the agent. Settings are taken from the arguments only (the
// CONSUL_HTTP_* environment variables are ignored, so the configuration file
// stays the single source).
func NewConsulClient(address, token string) (*api.Client, error) {
	if address == "" {
		return nil, errors.New("discovery: consul address is empty")
	}
	cfg := &api.Config{Address: address, Token: token}
	if u, ok := strings.CutPrefix(address, "https://"); ok {
		cfg.Address, cfg.Scheme = u, "https"
	} else if u, ok := strings.CutPrefix(address, "http://"); ok {
		cfg.Address, cfg.Scheme = u, "http"
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery: consul client: %w", err)
	}
	return c, nil
}

// NewInstanceID returns an id for this process, unique even among processes
// on one host: "<hostname>-<10 random base32 characters>". A gateway uses it
// as its gateway id; each registration's service id is "<service>-<id>".
func NewInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	return sanitizeID(host) + "-" + strings.ToLower(rand.Text()[:10])
}

// sanitizeID keeps [a-z0-9-] (Consul ids appear in URLs and DNS names).
func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// Registration is one role of this process in Consul.
type Registration struct {
	// Service is the service name (ServiceAPI, ServiceGateway, ...).
	Service string
	// Address is where others reach the role: the ADVERTISED host:port (or
	// a bare host for a role without a listener; "" registers no address).
	Address string
	// Tags and Meta are added to the registration; Meta also gets
	// MetaVersion and MetaInstance.
	Tags []string
	Meta map[string]string
	// Check, when set, runs before each TTL refresh: an error reports the
	// instance critical (with the error as output) until it passes again.
	Check func(ctx context.Context) error
}

// RegistrarOptions configures a Registrar.
type RegistrarOptions struct {
	Client *api.Client // required
	// Instance is this process's id (NewInstanceID); default a new one.
	Instance string
	// Version goes into every registration's meta.
	Version string
	// Tags are added to every registration's own tags (e.g. consul.tags:
	// a deployment or datacenter label).
	Tags []string
	// TTL of the health check (default 15 s); it is refreshed every TTL/3.
	TTL time.Duration
	// DeregisterAfter: Consul removes an instance that stayed critical this
	// long (default 1 min, Consul's minimum), e.g. after a crash.
	DeregisterAfter time.Duration
	Logger          *slog.Logger
}

// Registrar registers the roles of one process.
type Registrar struct {
	c        *api.Client
	instance string
	version  string
	tags     []string
	ttl      time.Duration
	deregAft time.Duration
	log      *slog.Logger
}

// NewRegistrar returns a Registrar. It does not contact the agent.
func NewRegistrar(o RegistrarOptions) (*Registrar, error) {
	if o.Client == nil {
		return nil, errors.New("discovery: registrar needs a consul client")
	}
	if o.Instance == "" {
		o.Instance = NewInstanceID()
	}
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.DeregisterAfter <= 0 {
		o.DeregisterAfter = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Registrar{c: o.Client, instance: o.Instance, version: o.Version, tags: slices.Clone(o.Tags), ttl: o.TTL,
		deregAft: o.DeregisterAfter, log: o.Logger}, nil
}

// Instance is this process's instance id.
func (r *Registrar) Instance() string { return r.instance }

// ServiceID is the Consul service id of service for this process.
func (r *Registrar) ServiceID(service string) string { return service + "-" + r.instance }

// Register registers reg with its check passing, and keeps the check
// refreshed until deregister is called. Call it once the role's listener is
// bound (the instance is healthy, and picked, at once). deregister marks the
// check critical, removes the registration and stops the refresher; it is
// safe to call more than once.
func (r *Registrar) Register(ctx context.Context, reg Registration) (deregister func(ctx context.Context) error, err error) {
	x, err := r.register(ctx, reg)
	if err != nil {
		return nil, err
	}
	return x.deregister, nil
}

// registered is one live registration and its TTL refresher.
type registered struct {
	r       *Registrar
	svc     *api.AgentServiceRegistration
	checkID string
	probe   func(ctx context.Context) error
	log     *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
}

func (r *Registrar) register(ctx context.Context, reg Registration) (*registered, error) {
	if reg.Service == "" {
		return nil, errors.New("discovery: registration without a service name")
	}
	host, port, err := splitAddress(reg.Address)
	if err != nil {
		return nil, fmt.Errorf("discovery: register %s: %w", reg.Service, err)
	}
	id := r.ServiceID(reg.Service)
	meta := maps.Clone(reg.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[MetaVersion] = r.version
	meta[MetaInstance] = r.instance
	x := &registered{
		r: r,
		svc: &api.AgentServiceRegistration{
			ID:      id,
			Name:    reg.Service,
			Address: host,
			Port:    port,
			Tags:    slices.Concat(reg.Tags, r.tags),
			Meta:    meta,
			Check: &api.AgentServiceCheck{
				CheckID:                        id + ":ttl",
				Name:                           reg.Service + " TTL",
				TTL:                            r.ttl.String(),
				Status:                         api.HealthPassing,
				Notes:                          "refreshed by the process every TTL/3",
				DeregisterCriticalServiceAfter: r.deregAft.String(),
			},
		},
		checkID: id + ":ttl",
		probe:   reg.Check,
		log:     r.log.With("service", reg.Service, "service_id", id),
		done:    make(chan struct{}),
	}
	if err := x.put(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	go x.refresh(rctx)
	x.log.Info("discovery: registered in consul", "address", reg.Address, "ttl", r.ttl)
	return x, nil
}

// splitAddress parses "host:port", "host" or "".
func splitAddress(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			if ip := net.ParseIP(addr); ip != nil && ip.IsUnspecified() {
				return "", 0, fmt.Errorf("address %q: no reachable host (register the advertised address, not the bind address)", addr)
			}
			return addr, 0, nil
		}
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", 0, fmt.Errorf("address %q: no reachable host (register the advertised address, not the bind address)", addr)
	}
	return host, port, nil
}

// put (re-)registers the service with its check passing.
func (x *registered) put(ctx context.Context) error {
	err := x.r.c.Agent().ServiceRegisterOpts(x.svc, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("discovery: register %s: %w", x.svc.ID, err)
	}
	return nil
}

// refresh updates the TTL check every TTL/3 until ctx ends. A failed update
// (the agent restarted and forgot us, or is unreachable) re-registers.
func (x *registered) refresh(ctx context.Context) {
	defer close(x.done)
	every := x.r.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		status, output := api.HealthPassing, "ok"
		if x.probe != nil {
			pctx, cancel := context.WithTimeout(ctx, every)
			err := x.probe(pctx)
			cancel()
			if err != nil {
				status, output = api.HealthCritical, err.Error()
			}
		}
		uctx, cancel := context.WithTimeout(ctx, every)
		err := x.r.c.Agent().UpdateTTLOpts(x.checkID, output, status, (&api.QueryOptions{}).WithContext(uctx))
		if err != nil && ctx.Err() == nil {
			// Re-register: idempotent, and what the agent needs after a
			// restart (dev agents and lost state forget services).
			err = x.put(uctx)
			if err == nil && status != api.HealthPassing {
				err = x.r.c.Agent().UpdateTTLOpts(x.checkID, output, status, (&api.QueryOptions{}).WithContext(uctx))
			}
		}
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			x.log.Warn("discovery: consul health refresh failing", "err", err)
		case err == nil && failing:
			failing = false
			x.log.Info("discovery: consul health refresh recovered")
		}
	}
}

// stop ends the refresher without deregistering (the process froze, as far
// as Consul can tell).
func (x *registered) stop() {
	x.cancel()
	<-x.done
}

func (x *registered) deregister(ctx context.Context) error {
	x.once.Do(func() {
		x.stop()
		agent := x.r.c.Agent()
		q := (&api.QueryOptions{}).WithContext(ctx)
		// Critical first: watchers drop the instance even if the
		// deregistration below fails.
		_ = agent.UpdateTTLOpts(x.checkID, "shutting down", api.HealthCritical, q)
		if err := agent.ServiceDeregisterOpts(x.svc.ID, q); err != nil {
			x.err = fmt.Errorf("discovery: deregister %s: %w", x.svc.ID, err)
			return
		}
		x.log.Info("discovery: deregistered from consul")
	})
	return x.err
}
