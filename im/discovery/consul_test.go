package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/testsvc"
)

func testLogger() *slog.Logger {
	if os.Getenv("SANDCAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startConsul starts a real dev-mode Consul agent for this test.
func startConsul(t *testing.T) *api.Client {
	t.Helper()
	c, err := discovery.NewConsulClient(testsvc.StartConsul(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds; it fails the test after a generous
// bound instead of hanging (the conditions depend on Consul's own timers).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newRegistrar(t *testing.T, c *api.Client, o discovery.RegistrarOptions) *discovery.Registrar {
	t.Helper()
	o.Client = c
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	r, err := discovery.NewRegistrar(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func register(t *testing.T, r *discovery.Registrar, reg discovery.Registration) func(context.Context) error {
	t.Helper()
	dereg, err := r.Register(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dereg(context.Background()) })
	return dereg
}

// passing returns the health-passing instances of service, by service id.
func passing(t *testing.T, c *api.Client, service string) map[string]*api.ServiceEntry {
	t.Helper()
	es, _, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*api.ServiceEntry{}
	for _, e := range es {
		out[e.Service.ID] = e
	}
	return out
}

func watch(t *testing.T, c *api.Client, service string) *discovery.Watcher {
	t.Helper()
	w, err := discovery.Watch(context.Background(), c, service, discovery.WatchOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func instanceIDs(w *discovery.Watcher) []string {
	var ids []string
	for _, in := range w.Instances() {
		ids = append(ids, in.ID)
	}
	return ids
}

func TestRegisterAndDeregister(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	r := newRegistrar(t, c, discovery.RegistrarOptions{Version: "1.2.3", TTL: 3 * time.Second, Tags: []string{"dc-test"}})
	dereg := register(t, r, discovery.Registration{
		Service: discovery.ServiceAPI, Address: "api.example.com:50001",
		Tags: []string{"api", "http"}, Meta: map[string]string{"region": "eu"},
	})
	id := r.ServiceID(discovery.ServiceAPI)
	host, _ := os.Hostname()
	if !strings.HasPrefix(id, "sandcat-api-") || (host != "" && !strings.Contains(id, strings.ToLower(host))) {
		t.Fatalf("service id %q does not name the service and the host %q", id, host)
	}

	waitFor(t, "the api instance to pass", func() bool { return passing(t, c, discovery.ServiceAPI)[id] != nil })
	e := passing(t, c, discovery.ServiceAPI)[id]
	s := e.Service
	if s.Address != "api.example.com" || s.Port != 50001 || !slices.Equal(s.Tags, []string{"api", "http", "dc-test"}) {
		t.Fatalf("registered %s:%d tags %v", s.Address, s.Port, s.Tags)
	}
	if s.Meta[discovery.MetaVersion] != "1.2.3" || s.Meta[discovery.MetaInstance] != r.Instance() || s.Meta["region"] != "eu" {
		t.Fatalf("meta %v", s.Meta)
	}
	var ttl *api.HealthCheck
	for _, ch := range e.Checks {
		if ch.ServiceID == id {
			ttl = ch
		}
	}
	if ttl == nil || ttl.Type != "ttl" || ttl.Status != api.HealthPassing {
		t.Fatalf("service check %+v, want a passing ttl check", ttl)
	}

	// The process refreshes the check: two TTLs later it still passes.
	time.Sleep(2 * 3 * time.Second)
	if passing(t, c, discovery.ServiceAPI)[id] == nil {
		t.Fatal("the instance lapsed although its process is alive")
	}

	if err := dereg(context.Background()); err != nil {
		t.Fatal(err)
	}
	svcs, err := c.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svcs[id]; ok {
		t.Fatal("still registered with the agent after deregister")
	}
	waitFor(t, "the catalog to forget the instance", func() bool {
		es, _, err := c.Health().Service(discovery.ServiceAPI, "", false, nil)
		return err == nil && len(es) == 0
	})
	if err := dereg(context.Background()); err != nil {
		t.Fatalf("second deregister: %v", err)
	}
}

// Two processes on one host (same hostname, same service, same address)
// get two instances (bug B12: "hostname-name" collided).
func TestTwoInstancesOnOneHostDoNotCollide(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	r1 := newRegistrar(t, c, discovery.RegistrarOptions{})
	r2 := newRegistrar(t, c, discovery.RegistrarOptions{})
	if r1.Instance() == r2.Instance() {
		t.Fatalf("two registrars share the instance id %q", r1.Instance())
	}
	reg := discovery.Registration{Service: discovery.ServiceMsgServer, Address: "10.0.0.5:0"}
	dereg1 := register(t, r1, reg)
	register(t, r2, reg)
	id1, id2 := r1.ServiceID(discovery.ServiceMsgServer), r2.ServiceID(discovery.ServiceMsgServer)
	waitFor(t, "both instances", func() bool { return len(passing(t, c, discovery.ServiceMsgServer)) == 2 })
	if p := passing(t, c, discovery.ServiceMsgServer); p[id1] == nil || p[id2] == nil {
		t.Fatalf("instances %v, want %s and %s", p, id1, id2)
	}
	if err := dereg1(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "only the second instance", func() bool {
		p := passing(t, c, discovery.ServiceMsgServer)
		return len(p) == 1 && p[id2] != nil
	})
}

func TestNewInstanceID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := discovery.NewInstanceID()
		if seen[id] || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Fatalf("instance id %q repeated or not [a-z0-9-]", id)
		}
		seen[id] = true
	}
}

func TestRegisterRefusesBadRegistrations(t *testing.T) {
	c, err := discovery.NewConsulClient("127.0.0.1:1", "") // never contacted
	if err != nil {
		t.Fatal(err)
	}
	r := newRegistrar(t, c, discovery.RegistrarOptions{})
	for _, reg := range []discovery.Registration{
		{Address: "h:1"},
		{Service: discovery.ServiceAPI, Address: "h:port"},
		{Service: discovery.ServiceAPI, Address: "h:70000"},
		{Service: discovery.ServiceAPI, Address: ":50001"}, // bind addresses, not advertised ones (B12)
		{Service: discovery.ServiceAPI, Address: "0.0.0.0:50001"},
		{Service: discovery.ServiceAPI, Address: "[::]:50001"},
		{Service: discovery.ServiceAPI, Address: "0.0.0.0"},
	} {
		if _, err := r.Register(context.Background(), reg); err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("Register(%+v) = %v, want a validation error", reg, err)
		}
	}
	if _, err := discovery.NewRegistrar(discovery.RegistrarOptions{}); err == nil {
		t.Error("NewRegistrar without a client accepted")
	}
	if _, err := discovery.NewConsulClient("", ""); err == nil {
		t.Error("NewConsulClient without an address accepted")
	}
}

// Registration.Check reports the instance critical while it fails: it leaves
// the healthy set, and comes back when the check passes again.
func TestCheckFailureTakesTheInstanceOut(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	var sick atomic.Bool
	r := newRegistrar(t, c, discovery.RegistrarOptions{TTL: 900 * time.Millisecond})
	register(t, r, discovery.Registration{Service: discovery.ServiceAppservice, Address: "as.example:29400",
		Check: func(context.Context) error {
			if sick.Load() {
				return errors.New("homeserver unreachable")
			}
			return nil
		}})
	w := watch(t, c, discovery.ServiceAppservice)
	waitFor(t, "the instance", func() bool { return len(w.Instances()) == 1 })
	sick.Store(true)
	waitFor(t, "the failing instance to leave", func() bool { return len(w.Instances()) == 0 })
	es, _, err := c.Health().Service(discovery.ServiceAppservice, "", false, nil)
	if err != nil || len(es) != 1 {
		t.Fatalf("all instances: %v %v", es, err)
	}
	if out := es[0].Checks.AggregatedStatus(); out != api.HealthCritical {
		t.Fatalf("status %s, want critical", out)
	}
	var output string
	for _, ch := range es[0].Checks {
		if ch.ServiceID != "" {
			output = ch.Output
		}
	}
	if !strings.Contains(output, "homeserver unreachable") {
		t.Fatalf("check output %q does not give the reason", output)
	}
	sick.Store(false)
	waitFor(t, "the instance to come back", func() bool { return len(w.Instances()) == 1 })
}

// A Consul agent that restarts (a dev agent forgets everything) gets the
// registration back from the refresher, and the watcher follows.
func TestReregisterAfterAgentRestart(t *testing.T) {
	t.Parallel()
	agent := testsvc.RunConsul(t)
	c, err := discovery.NewConsulClient(agent.HTTPAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	r := newRegistrar(t, c, discovery.RegistrarOptions{TTL: 900 * time.Millisecond})
	register(t, r, discovery.Registration{Service: discovery.ServiceGateway, Address: "gw.example:50000"})
	w := watch(t, c, discovery.ServiceGateway)
	waitFor(t, "the instance", func() bool { return len(w.Instances()) == 1 })
	agent.Restart(t)
	waitFor(t, "the agent to know the instance again", func() bool {
		p, _, err := c.Health().Service(discovery.ServiceGateway, "", true, nil)
		return err == nil && len(p) == 1
	})
	waitFor(t, "the watcher to see it", func() bool {
		return slices.Equal(instanceIDs(w), []string{r.ServiceID(discovery.ServiceGateway)})
	})
}

func TestWSPicker(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	want := map[string]bool{}
	var regs []*discovery.Registrar
	for i := range 3 {
		r := newRegistrar(t, c, discovery.RegistrarOptions{})
		regs = append(regs, r)
		meta := map[string]string{discovery.MetaGatewayID: r.Instance()}
		addr := fmt.Sprintf("gw%d.example.com:443", i)
		if i < 2 {
			meta[discovery.MetaWSAddr] = fmt.Sprintf("wss://gw%d.example.com/ws", i)
			want[meta[discovery.MetaWSAddr]] = true
		} else {
			want["wss://"+addr+"/ws"] = true // no ws_addr meta: protocol://address/ws
		}
		register(t, r, discovery.Registration{Service: discovery.ServiceGateway, Address: addr, Meta: meta})
	}
	w := watch(t, c, discovery.ServiceGateway)
	waitFor(t, "three gateways", func() bool { return len(w.Instances()) == 3 })

	rr, err := discovery.NewWSPicker(w, discovery.RoundRobin, "wss")
	if err != nil {
		t.Fatal(err)
	}
	var picks []string
	for range 6 {
		a, err := rr.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		picks = append(picks, a)
	}
	for i, a := range picks {
		if !want[a] || picks[(i+3)%6] != a || (i < 3 && slices.Contains(picks[:i], a)) {
			t.Fatalf("round robin picked %v from %v", picks, want)
		}
	}

	rnd, err := discovery.NewWSPicker(w, discovery.Random, "wss")
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if a, err := rnd.Pick(context.Background()); err != nil || !want[a] {
			t.Fatalf("random picked %q, %v", a, err)
		}
	}
	if _, err := discovery.NewWSPicker(w, "LeastConn", "ws"); err == nil {
		t.Fatal("unknown strategy accepted")
	}

	// Static fallback: the local gateway, always.
	st := discovery.NewStaticWSPicker("ws://127.0.0.1:50000/ws")
	if a, err := st.Pick(context.Background()); err != nil || a != "ws://127.0.0.1:50000/ws" {
		t.Fatalf("static picked %q, %v", a, err)
	}

	// No gateway left: a clear error.
	empty := watch(t, c, "sandcat-gateway-none")
	p, err := discovery.NewWSPicker(empty, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Pick(context.Background()); !errors.Is(err, discovery.ErrNoGateway) {
		t.Fatalf("pick among none: %v", err)
	}
}

// The watcher sees a gateway registered after it started, without delay
// beyond Consul's own propagation (no 10 s startup wait, bug B12).
func TestWatcherSeesNewInstances(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	var changes atomic.Int64
	w, err := discovery.Watch(context.Background(), c, discovery.ServiceGateway, discovery.WatchOptions{
		Logger: testLogger(), OnChange: func([]discovery.Instance) { changes.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n := len(w.Instances()); n != 0 {
		t.Fatalf("%d instances before any registration", n)
	}
	r := newRegistrar(t, c, discovery.RegistrarOptions{})
	register(t, r, discovery.Registration{Service: discovery.ServiceGateway, Address: "gw.example:1",
		Meta: map[string]string{discovery.MetaGatewayID: "gw-1"}})
	waitFor(t, "the new gateway", func() bool { return len(w.Instances()) == 1 })
	in, ok := w.Gateway("gw-1")
	if !ok || in.Address != "gw.example:1" || in.ID != r.ServiceID(discovery.ServiceGateway) {
		t.Fatalf("Gateway(gw-1) = %+v, %v", in, ok)
	}
	if changes.Load() == 0 {
		t.Fatal("OnChange was not called")
	}
	w.Close()
	w.Close() // idempotent
}

func TestWatchFailsWithoutConsul(t *testing.T) {
	c, err := discovery.NewConsulClient("127.0.0.1:1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := discovery.Watch(context.Background(), c, discovery.ServiceGateway, discovery.WatchOptions{}); err == nil {
		t.Fatal("Watch succeeded without an agent")
	}
}
