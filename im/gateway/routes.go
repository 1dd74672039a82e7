package gateway

import (
	"context"
	"time"
)

// RouteTable records which gateway instance holds which user's device, so
// the message server pushes only to the gateways that hold the recipients
// (im/cache.Routes on Redis). The gateway's owner refreshes the whole table
// periodically from Connections, so a failed Add or Remove heals.
type RouteTable interface {
	Add(ctx context.Context, userID string, platform int32, gatewayID string) error
	Remove(ctx context.Context, userID string, platform int32, gatewayID string) error
}

const routeTimeout = 5 * time.Second

// ID is the gateway instance id given in Config.
func (g *Gateway) ID() string { return g.cfg.ID }

func (g *Gateway) routeAdded(c *conn) {
	if g.cfg.Routes == nil {
		return
	}
	ctx, cancel := context.WithTimeout(g.base, routeTimeout)
	defer cancel()
	if err := g.cfg.Routes.Add(ctx, c.user, c.platform, g.cfg.ID); err != nil {
		g.log.Warn("gateway: route add failed; the next refresh retries", "user", c.user, "platform", c.platform, "err", err)
	}
}

func (g *Gateway) routeRemoved(c *conn) {
	if g.cfg.Routes == nil {
		return
	}
	ctx, cancel := context.WithTimeout(g.base, routeTimeout)
	defer cancel()
	if err := g.cfg.Routes.Remove(ctx, c.user, c.platform, g.cfg.ID); err != nil {
		g.log.Warn("gateway: route remove failed; it expires", "user", c.user, "platform", c.platform, "err", err)
	}
}

// KnockOff closes the user's connection on that platform with 4001, as when
// the same user and platform connect again: used when another gateway took
// over the user's route (a second connection elsewhere).
func (g *Gateway) KnockOff(userID string, platform int32) bool {
	conns, ok := g.reg.get(userID)
	if !ok || platform < 0 || int(platform) >= len(conns) || conns[platform] == nil {
		return false
	}
	g.stats.knockedOff.Add(1)
	conns[platform].closeWith(CloseKnockOff, knockOffReason)
	return true
}
