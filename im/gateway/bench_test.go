package gateway_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sandcat-im/sandcat/im/wire"
)

// BenchmarkSendPath measures one frame in → its ACK out, through the whole
// stack: decode, checks, send seq, the embedded bus (durable), the ACK; the
// consumer and the pushes to the receivers run at the same time, on the same
// two cores. Each sender waits for its ACK before the next frame (in order
// per connection); the parallelism comes from many connections.
func BenchmarkSendPath(b *testing.B) {
	for _, pairs := range []int{1, 64} {
		b.Run(fmt.Sprintf("conns=%d", pairs), func(b *testing.B) {
			s := newStack(b, stackOpts{})
			senders := make([]*client, pairs)
			receivers := make([]*client, pairs)
			for i := range pairs {
				senders[i] = s.dial(fmt.Sprintf("s%d", i), 0)
				receivers[i] = s.dialOpt(fmt.Sprintf("r%d", i), 0, true)
			}
			var next atomic.Int64
			content := make([]byte, 100)
			b.SetParallelism((pairs + 1) / 2) // GOMAXPROCS is 2: one goroutine per pair
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1) - 1)
				c := senders[i%pairs]
				m := &wire.Msg{SendID: c.user, ReceiverID: fmt.Sprintf("r%d", i%pairs), MsgType: wire.MsgTypeSingleMsg,
					ContentType: wire.ContentText, Content: content}
				for pb.Next() {
					m.LocalID = newLocalID()
					c.send(m)
					if ack := c.next(); ack.MsgType != wire.MsgTypeMsgRecResp || ack.ContentType == wire.ContentError {
						b.Errorf("bad ACK %+v", ack)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acks/s")
		})
	}
}
