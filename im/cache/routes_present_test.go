package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/cache"
	"github.com/sandcat-im/sandcat/im/cache/redistest"
)

// Present tells a gateway that Redis lost its routes (here: every key of the
// prefix deleted, as a restart without persistence does), so that it
// refreshes them at once.
func TestRoutesPresent(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	r := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix, TTL: time.Minute})
	present := func(gw string) bool {
		t.Helper()
		ok, err := r.Present(ctx, gw)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if present("gw-1") {
		t.Fatal("present before any refresh")
	}
	entries := []cache.RouteEntry{{UserID: "u1", Platform: 0}, {UserID: "u2", Platform: 1}}
	if _, err := r.Refresh(ctx, "gw-1", entries); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(ctx, "gw-2", nil); err != nil { // a gateway without connections
		t.Fatal(err)
	}
	if !present("gw-1") || !present("gw-2") || present("gw-3") {
		t.Fatalf("after refreshes: gw-1 %v gw-2 %v gw-3 %v", present("gw-1"), present("gw-2"), present("gw-3"))
	}
	if ttl := rdb.PTTL(ctx, prefix+"route_gateway:gw-1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("marker TTL %v, want the route TTL", ttl)
	}

	if err := redistest.DeletePrefix(ctx, rdb, prefix); err != nil {
		t.Fatal(err)
	}
	if present("gw-1") {
		t.Fatal("present after Redis lost everything")
	}
	if _, err := r.Refresh(ctx, "gw-1", entries); err != nil {
		t.Fatal(err)
	}
	sameRoutes(t, "after the refresh", locate(t, r, "u1", "u2"), map[string][]string{"u1": {"gw-1"}, "u2": {"gw-1"}})
	if !present("gw-1") {
		t.Fatal("not present after the refresh")
	}
}
