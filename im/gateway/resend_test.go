package gateway

import (
	"context"
	"testing"
	"time"
)

func TestRecentSends(t *testing.T) {
	clock := time.Unix(1000, 0)
	r := newRecentSends(time.Minute, 10)
	r.now = func() time.Time { return clock }
	r.rotated = clock
	ctx := context.Background()
	expired, cancel := context.WithCancel(ctx)
	cancel()

	steps := []struct {
		name      string
		advance   time.Duration
		key       string
		end       string // "ok", "fail" or "" (leave in flight)
		wantFirst bool
		wantSID   string // a retry's answer: the first's server_id, "" for none (failed or in flight)
	}{
		{"first send", 0, "a", "ok", true, ""},
		{"retry gets the first's fields", 0, "a", "", false, "sid-a"},
		{"failed send is forgotten", 0, "b", "fail", true, ""},
		{"so its retry is sent", 0, "b", "ok", true, ""},
		{"in flight", 0, "c", "", true, ""},
		{"retry of one in flight: no answer yet", 0, "c", "", false, ""},
		{"kept one span later (old generation)", time.Minute, "a", "", false, "sid-a"},
		{"gone two spans later", time.Minute, "a", "ok", true, ""},
	}
	for _, st := range steps {
		clock = clock.Add(st.advance)
		first := r.begin(st.key)
		if first != st.wantFirst {
			t.Fatalf("%s: first = %v, want %v", st.name, first, st.wantFirst)
		}
		if !first {
			// A retry in flight waits (here with an ended context: no answer).
			wctx := ctx
			if st.wantSID == "" {
				wctx = expired
			}
			s, ok := r.wait(wctx, st.key)
			if got := map[bool]string{true: s.serverID}[ok]; got != st.wantSID {
				t.Fatalf("%s: retry answered %q (%v), want %q", st.name, s.serverID, ok, st.wantSID)
			}
			continue
		}
		switch st.end {
		case "ok":
			r.end(st.key, true, "sid-"+st.key, 1, 2)
		case "fail":
			r.end(st.key, false, "", 0, 0)
		}
	}
	// A retry waiting for a send in flight gets its fields when it ends.
	r.begin("d")
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.end("d", true, "sid-d", 1, 2)
	}()
	if s, ok := r.wait(ctx, "d"); !ok || s.serverID != "sid-d" || s.sendSeq != 2 {
		t.Fatalf("waiting retry: %+v %v", s, ok)
	}
	// A generation that fills up rotates early: at most 2×max entries kept.
	for i := range 25 {
		k := string(rune('A' + i))
		r.begin(k)
		r.end(k, true, "x", 1, 1)
	}
	if n := len(r.cur) + len(r.old); n > 2*r.max {
		t.Fatalf("%d entries kept, want at most %d", n, 2*r.max)
	}
}
