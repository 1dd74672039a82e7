package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandcat-im/sandcat/im/gateway"
)

// gatewayCollector exposes a gateway's counters (gateway.Stats) to
// Prometheus, read at scrape time.
type gatewayCollector struct {
	gw    *gateway.Gateway
	descs []gatewayMetric
}

type gatewayMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(gateway.Stats) int64
}

func newGatewayCollector(gw *gateway.Gateway) *gatewayCollector {
	label := prometheus.Labels{"gateway_id": gw.ID()}
	m := func(name, help string, kind prometheus.ValueType, v func(gateway.Stats) int64) gatewayMetric {
		return gatewayMetric{desc: prometheus.NewDesc("sandcat_gateway_"+name, help, nil, label), kind: kind, value: v}
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	return &gatewayCollector{gw: gw, descs: []gatewayMetric{
		m("connections", "WebSocket connections open now.", g, func(s gateway.Stats) int64 { return s.Connections }),
		m("accepted_total", "WebSocket connections accepted.", c, func(s gateway.Stats) int64 { return s.Accepted }),
		m("rejected_total", "Connections closed with 4002 (bad token).", c, func(s gateway.Stats) int64 { return s.Rejected }),
		m("knocked_off_total", "Connections closed with 4001 (replaced by a newer one).", c, func(s gateway.Stats) int64 { return s.KnockedOff }),
		m("slow_closed_total", "Connections dropped because their send queue was full.", c, func(s gateway.Stats) int64 { return s.SlowClosed }),
		m("frames_in_total", "Frames read from clients.", c, func(s gateway.Stats) int64 { return s.FramesIn }),
		m("decode_errors_total", "Client frames that did not decode.", c, func(s gateway.Stats) int64 { return s.DecodeErrors }),
		m("refused_total", "Client frames refused by the send path.", c, func(s gateway.Stats) int64 { return s.Refused }),
		m("send_errors_total", "Client frames that could not be made durable.", c, func(s gateway.Stats) int64 { return s.SendErrors }),
		m("acks_total", "Successful ACKs.", c, func(s gateway.Stats) int64 { return s.Acks }),
		m("deliveries_total", "Frames queued on connections for live delivery.", c, func(s gateway.Stats) int64 { return s.Deliveries }),
		m("bytes_out_total", "Bytes written to WebSockets.", c, func(s gateway.Stats) int64 { return s.BytesOut }),
		m("pushed_total", "Deliveries received from message servers through the push API.", c, func(s gateway.Stats) int64 { return s.Pushed }),
		m("unrouted_total", "Deliveries for a user without a connection on this gateway.", c, func(s gateway.Stats) int64 { return s.Unrouted }),
		m("resends_total", "Frames sent again under a local_id already sent: answered with the first ACK, not stored again.", c, func(s gateway.Stats) int64 { return s.Resends }),
	}}
}

func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.descs {
		ch <- m.desc
	}
}

func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.gw.Stats()
	for _, m := range c.descs {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(s)))
	}
}
