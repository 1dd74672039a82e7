package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// ErrNoGateway: no healthy gateway is registered.
var ErrNoGateway = errors.New("discovery: no websocket service available")

// Load-balancing strategies of the WSPicker (config server.ws_lb_strategy).
const (
	RoundRobin = "RoundRobin"
	Random     = "Random"
)

// WSPicker picks the ws_addr a login returns: among the healthy
// sandcat-gateway instances (Consul), or always the local gateway (static,
// the embedded default).
type WSPicker struct {
	static   string
	w        *Watcher
	random   bool
	protocol string
	next     atomic.Uint64
}

// NewStaticWSPicker returns a picker that always answers wsAddr (the local
// gateway's advertised "ws://host:port/ws").
func NewStaticWSPicker(wsAddr string) *WSPicker {
	return &WSPicker{static: wsAddr}
}

// NewWSPicker picks among w's instances (a Watcher of ServiceGateway) by
// strategy (RoundRobin, the default when empty, or Random). An instance's
// MetaWSAddr is returned as is; an instance without it gives
// protocol://address/ws (protocol default "ws").
func NewWSPicker(w *Watcher, strategy, protocol string) (*WSPicker, error) {
	if w == nil {
		return nil, errors.New("discovery: WSPicker needs a watcher")
	}
	p := &WSPicker{w: w, protocol: protocol}
	switch strategy {
	case "", RoundRobin:
	case Random:
		p.random = true
	default:
		return nil, fmt.Errorf("discovery: unknown ws_lb_strategy %q (RoundRobin or Random)", strategy)
	}
	if p.protocol == "" {
		p.protocol = "ws"
	}
	return p, nil
}

// Pick returns the ws_addr for one login (the signature of
// account.Options.WSAddr). It fails with ErrNoGateway when no gateway is
// healthy.
func (p *WSPicker) Pick(context.Context) (string, error) {
	if p.w == nil {
		return p.static, nil
	}
	list := p.w.Instances()
	if len(list) == 0 {
		return "", ErrNoGateway
	}
	var in Instance
	if p.random {
		in = list[rand.IntN(len(list))]
	} else {
		in = list[(p.next.Add(1)-1)%uint64(len(list))]
	}
	if a := in.Meta[MetaWSAddr]; a != "" {
		return a, nil
	}
	return p.protocol + "://" + in.Address + "/ws", nil
}
