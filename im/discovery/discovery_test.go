package discovery_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/msgserver"
)

type fakeGW struct {
	online map[string]bool
	got    []string
}

func (g *fakeGW) Online(u string) bool { return g.online[u] }
func (g *fakeGW) Deliver(ds []msgserver.Delivery) {
	for _, d := range ds {
		g.got = append(g.got, d.UserID)
	}
}

func TestStatic(t *testing.T) {
	gw := &fakeGW{online: map[string]bool{"a": true, "c": true}}
	s := discovery.NewStatic("gw-1", gw)
	where, err := s.Locate(context.Background(), []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(where) != "map[a:[gw-1] c:[gw-1]]" {
		t.Fatalf("Locate = %v", where)
	}
	if err := s.Push(context.Background(), "gw-1", []msgserver.Delivery{{UserID: "a"}, {UserID: "c"}}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gw.got) != "[a c]" {
		t.Fatalf("delivered to %v", gw.got)
	}
	if err := s.Push(context.Background(), "gw-2", nil); err == nil {
		t.Fatal("push to an unknown gateway succeeded")
	}
}
