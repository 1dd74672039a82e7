package discovery_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/msgserver"
)

type recordingClient struct{ got []string }

func (c *recordingClient) Push(_ context.Context, gatewayID string, ds []msgserver.Delivery) error {
	for _, d := range ds {
		c.got = append(c.got, gatewayID+":"+d.UserID)
	}
	return nil
}

func TestLocalFirst(t *testing.T) {
	gw := &fakeGW{}
	remote := &recordingClient{}
	l := discovery.NewLocalFirst("gw-local", gw, remote)
	ctx := context.Background()
	for _, p := range []struct {
		gw, user string
	}{{"gw-local", "a"}, {"gw-other", "b"}, {"gw-local", "c"}} {
		if err := l.Push(ctx, p.gw, []msgserver.Delivery{{UserID: p.user}}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(gw.got) != "[a c]" || fmt.Sprint(remote.got) != "[gw-other:b]" {
		t.Fatalf("local got %v, remote got %v", gw.got, remote.got)
	}
}
