package msgserver

import (
	"context"
	"log/slog"

	"github.com/sandcat-im/sandcat/im/wire"
)

// Delivery is one message for one user's live connections.
type Delivery struct {
	// UserID is the recipient.
	UserID string
	// Msg is what is written (bincode) to the user's connections. It is
	// shared and must not be modified once handed over.
	Msg *wire.Msg
	// Echo marks the copy for the sender's own other devices of a frame
	// that came from a connection (FromConnection): every connection of
	// UserID except the one on Msg.Platform, the device the message came
	// from (which gets the ACK instead). The sender's copy of an API notice
	// (FromServer) is not an Echo: no device sent it, every device gets it.
	Echo bool
}

// Router tells which gateways hold live connections of users.
type Router interface {
	// Locate returns, for each user of users that is online somewhere, the
	// ids of the gateways holding its connections. Offline users are absent.
	Locate(ctx context.Context, users []string) (map[string][]string, error)
}

// GatewayClient hands deliveries to one gateway.
type GatewayClient interface {
	Push(ctx context.Context, gatewayID string, ds []Delivery) error
}

// Pusher sends deliveries to the gateways that hold the recipients, and only
// to those. Push failures are logged, never returned: the message is stored
// and the client catches up through its seqs.
type Pusher struct {
	router Router
	gws    GatewayClient
	log    *slog.Logger
}

// NewPusher returns a Pusher over a Router and a GatewayClient.
func NewPusher(r Router, g GatewayClient, log *slog.Logger) *Pusher {
	if log == nil {
		log = slog.Default()
	}
	return &Pusher{router: r, gws: g, log: log}
}

// Push delivers ds, keeping their order per gateway.
func (p *Pusher) Push(ctx context.Context, ds []Delivery) {
	if len(ds) == 0 {
		return
	}
	users := make([]string, 0, len(ds))
	seen := make(map[string]struct{}, len(ds))
	for _, d := range ds {
		if _, ok := seen[d.UserID]; !ok {
			seen[d.UserID] = struct{}{}
			users = append(users, d.UserID)
		}
	}
	where, err := p.router.Locate(ctx, users)
	if err != nil {
		p.log.WarnContext(ctx, "msgserver: locate recipients failed; not pushed", "deliveries", len(ds), "err", err)
		return
	}
	if len(where) == 0 {
		return
	}
	var order []string
	byGW := make(map[string][]Delivery)
	for _, d := range ds {
		for _, gw := range where[d.UserID] {
			if _, ok := byGW[gw]; !ok {
				order = append(order, gw)
			}
			byGW[gw] = append(byGW[gw], d)
		}
	}
	for _, gw := range order {
		if err := p.gws.Push(ctx, gw, byGW[gw]); err != nil {
			p.log.WarnContext(ctx, "msgserver: push to gateway failed", "gateway", gw, "deliveries", len(byGW[gw]), "err", err)
		}
	}
}
