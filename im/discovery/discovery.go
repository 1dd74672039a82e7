// Package discovery answers "which gateway holds user X" for the message
// server's pusher and carries deliveries to those gateways.
//
// Static is the single-process implementation: one gateway, in the same
// process, reached by a function call. Consul and remote gateways come later
// behind the same msgserver.Router and msgserver.GatewayClient interfaces.
package discovery

import (
	"context"
	"fmt"

	"github.com/sandcat-im/sandcat/im/msgserver"
)

// LocalGateway is the in-process gateway (im/gateway's *Gateway satisfies it).
type LocalGateway interface {
	// Online reports whether the user has a live connection on this gateway.
	Online(userID string) bool
	// Deliver writes deliveries to the users' connections without blocking.
	Deliver(ds []msgserver.Delivery)
}

// Static routes every online user to the one local gateway.
type Static struct {
	id string
	gw LocalGateway
}

var (
	_ msgserver.Router        = (*Static)(nil)
	_ msgserver.GatewayClient = (*Static)(nil)
)

// NewStatic returns the router and client for one in-process gateway named id.
func NewStatic(id string, gw LocalGateway) *Static {
	return &Static{id: id, gw: gw}
}

// Locate maps each online user to the local gateway; offline users are left out.
func (s *Static) Locate(_ context.Context, users []string) (map[string][]string, error) {
	out := make(map[string][]string, len(users))
	ids := []string{s.id}
	for _, u := range users {
		if s.gw.Online(u) {
			out[u] = ids
		}
	}
	return out, nil
}

// Push hands deliveries to the local gateway.
func (s *Static) Push(_ context.Context, gatewayID string, ds []msgserver.Delivery) error {
	if gatewayID != s.id {
		return fmt.Errorf("discovery: unknown gateway %q (only %q is local)", gatewayID, s.id)
	}
	s.gw.Deliver(ds)
	return nil
}
