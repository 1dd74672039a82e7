package discovery

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sandcat-im/sandcat/im/testsvc"
)

// A process that stops refreshing its TTL (frozen, or killed before it
// could deregister) leaves the healthy set after one TTL, and the WSPicker
// stops handing it out; the lapsed instance stays in the catalog, critical,
// until Consul reaps it.
func TestTTLLapseRemovesTheInstance(t *testing.T) {
	t.Parallel()
	c, err := NewConsulClient(testsvc.StartConsul(t), "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	var regs [2]*registered
	var addrs [2]string
	for i, name := range []string{"a", "b"} {
		r, err := NewRegistrar(RegistrarOptions{Client: c, TTL: time.Second, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = "ws://" + name + ".example:50000/ws"
		regs[i], err = r.register(ctx, Registration{Service: ServiceGateway, Address: name + ".example:50000",
			Meta: map[string]string{MetaWSAddr: addrs[i], MetaGatewayID: r.Instance()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = regs[i].deregister(ctx) })
	}
	w, err := Watch(ctx, c, ServiceGateway, WatchOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p, err := NewWSPicker(w, RoundRobin, "ws")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both gateways", func() bool { return len(w.Instances()) == 2 })
	seen := map[string]bool{}
	for range 2 {
		a, err := p.Pick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[a] = true
	}
	if !seen[addrs[0]] || !seen[addrs[1]] {
		t.Fatalf("round robin over two gateways picked %v", seen)
	}

	regs[1].stop() // b freezes: no more refreshes, no deregistration
	waitUntil(t, "the frozen gateway to lapse", func() bool { return len(w.Instances()) == 1 })
	if in := w.Instances()[0]; in.ID != regs[0].svc.ID {
		t.Fatalf("left with %s, want %s", in.ID, regs[0].svc.ID)
	}
	for range 10 {
		if a, err := p.Pick(ctx); err != nil || a != addrs[0] {
			t.Fatalf("picked %q, %v after b lapsed", a, err)
		}
	}
	es, _, err := c.Health().Service(ServiceGateway, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		want := api.HealthPassing
		if e.Service.ID == regs[1].svc.ID {
			want = api.HealthCritical
		}
		if got := e.Checks.AggregatedStatus(); got != want {
			t.Fatalf("%s is %s, want %s", e.Service.ID, got, want)
		}
	}
	if len(es) != 2 {
		t.Fatalf("catalog has %d instances, want both (the lapsed one critical)", len(es))
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
