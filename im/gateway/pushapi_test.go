package gateway_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

func sampleMsg(seq, sendSeq int64) *wire.Msg {
	rel := "rel-1"
	return &wire.Msg{SendID: "alice", ReceiverID: "g1", LocalID: "l1", ServerID: "s1234567890123456789a",
		CreateTime: 1, SendTime: 2, Seq: seq, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte("hello group"), GroupID: "g1", Platform: wire.PlatformMobile, Avatar: "av", Nickname: "Al",
		RelatedMsgID: &rel, SendSeq: sendSeq}
}

// fanOut is what the consumer makes of a group message: the sender's echo,
// then one copy per member differing only in seq and send_seq.
func fanOut(n int) []msgserver.Delivery {
	ds := []msgserver.Delivery{{UserID: "alice", Msg: sampleMsg(0, 7), Echo: true}}
	for i := range n {
		ds = append(ds, msgserver.Delivery{UserID: fmt.Sprintf("member-%03d", i), Msg: sampleMsg(int64(100+i), 0)})
	}
	return ds
}

func sameDeliveries(t *testing.T, got, want []msgserver.Delivery) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d deliveries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.UserID != w.UserID || g.Echo != w.Echo || !bytes.Equal(g.Msg.MarshalBincode(), w.Msg.MarshalBincode()) {
			t.Fatalf("delivery %d: got %s echo=%v %+v, want %s echo=%v %+v", i, g.UserID, g.Echo, *g.Msg, w.UserID, w.Echo, *w.Msg)
		}
	}
}

func TestPushBatchRoundTrip(t *testing.T) {
	other := sampleMsg(3, 0)
	other.Content = []byte("another message")
	tests := []struct {
		name string
		ds   []msgserver.Delivery
	}{
		{"empty", nil},
		{"single", []msgserver.Delivery{{UserID: "bob", Msg: &wire.Msg{SendID: "alice", ReceiverID: "bob", Seq: 1}}}},
		{"single with echo", []msgserver.Delivery{
			{UserID: "bob", Msg: &wire.Msg{SendID: "alice", ReceiverID: "bob", Seq: 5, SendSeq: 9, Content: []byte{0, 1, 2}}},
			{UserID: "alice", Msg: &wire.Msg{SendID: "alice", ReceiverID: "bob", Seq: 0, SendSeq: 9, Content: []byte{0, 1, 2}}, Echo: true},
		}},
		{"group fan-out", fanOut(20)},
		{"different messages interleaved", []msgserver.Delivery{
			{UserID: "a", Msg: sampleMsg(1, 0)}, {UserID: "b", Msg: other}, {UserID: "c", Msg: sampleMsg(2, 0)},
			{UserID: "d", Msg: sampleMsg(-1, 1<<40)},
		}},
		{"same pointer twice", func() []msgserver.Delivery {
			m := sampleMsg(4, 4)
			return []msgserver.Delivery{{UserID: "a", Msg: m}, {UserID: "a", Msg: m, Echo: true}}
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := gateway.AppendPushBatch([]byte("prefix"), tt.ds)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("AppendPushBatch overwrote dst")
			}
			got, err := gateway.DecodePushBatch(b[len("prefix"):])
			if err != nil {
				t.Fatal(err)
			}
			sameDeliveries(t, got, tt.ds)
		})
	}
}

// A group fan-out costs a few bytes per member, not a message per member.
func TestPushBatchFanOutIsCompact(t *testing.T) {
	ds := fanOut(500)
	b := gateway.AppendPushBatch(nil, ds)
	full := ds[0].Msg.BincodeSize()
	perMember := 1 + len("member-000") + 1 + 2 + 1 // user length, user, flags, seq and send_seq varints
	if limit := 2*full + 500*perMember + 16; len(b) > limit {
		t.Fatalf("fan-out of 500 encodes to %d bytes, want at most %d (a message is %d bytes)", len(b), limit, full)
	}
	// Nothing is skipped on the way.
	got, err := gateway.DecodePushBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	sameDeliveries(t, got, ds)
}

func TestAppendPushBatchSkipsNilMsg(t *testing.T) {
	ds := []msgserver.Delivery{{UserID: "a"}, {UserID: "b", Msg: sampleMsg(1, 1)}}
	got, err := gateway.DecodePushBatch(gateway.AppendPushBatch(nil, ds))
	if err != nil {
		t.Fatal(err)
	}
	sameDeliveries(t, got, ds[1:])
}

func TestDecodePushBatchErrors(t *testing.T) {
	good := gateway.AppendPushBatch(nil, fanOut(2))
	hdr := func(count uint64) []byte { return binary.AppendUvarint([]byte{1}, count) }
	withUser := func(b []byte, user string, flags byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(user)))
		return append(append(b, user...), flags)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"no count", []byte{1}},
		{"count beyond the body", hdr(1000)},
		{"huge count", hdr(1 << 62)},
		{"empty user id", append(withUser(hdr(1), "", 0), 0, 0)},
		{"user id past the end", append(hdr(1), 50, 'a', 'b')},
		{"missing flags", append(hdr(1), 2, 'a', 'b')},
		{"unknown flags", append(withUser(hdr(1), "ab", 0x80), 0)},
		{"same without a message before", append(withUser(hdr(1), "ab", 2), 2, 2)},
		{"same without seqs", withUser(wire.AppendMsg(withUser(hdr(2), "ab", 0), sampleMsg(1, 1)), "cd", 2)},
		{"same with a truncated send_seq", append(withUser(wire.AppendMsg(withUser(hdr(2), "ab", 0), sampleMsg(1, 1)), "cd", 2), 2, 0x80)},
		{"truncated message", good[:len(good)-3]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := gateway.DecodePushBatch(tt.b); !errors.Is(err, gateway.ErrPushBatch) {
				t.Fatalf("err = %v, want ErrPushBatch", err)
			}
		})
	}
}

func FuzzDecodePushBatch(f *testing.F) {
	f.Add(gateway.AppendPushBatch(nil, fanOut(3)))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := gateway.DecodePushBatch(b)
		if err != nil {
			return
		}
		again, err := gateway.DecodePushBatch(gateway.AppendPushBatch(nil, ds))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		sameDeliveries(t, again, ds)
	})
}

func TestDerivePushSecret(t *testing.T) {
	a := gateway.DerivePushSecret([]byte("secret-one-0123456789"))
	if a != gateway.DerivePushSecret([]byte("secret-one-0123456789")) || len(a) != 64 {
		t.Fatalf("not a stable 32-byte hex value: %q", a)
	}
	if a == gateway.DerivePushSecret([]byte("secret-two-0123456789")) {
		t.Fatal("different JWT secrets give the same push secret")
	}
	if strings.Contains(a, "secret-one") {
		t.Fatal("push secret reveals the JWT secret")
	}
}

// The push endpoint over real HTTP to a gateway with real WebSocket clients.
func TestPushHandler(t *testing.T) {
	s := newStack(t, stackOpts{noConsumer: true})
	const secret = "push-secret-for-tests"
	h, err := gateway.NewPushHandler(s.gw, gateway.PushHandlerOptions{GatewayID: "gw-a", Secret: secret, MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gateway.PushRoute, h)
	internal := httptest.NewServer(mux)
	t.Cleanup(internal.Close)

	bobDesk := s.dial("bob", wire.PlatformDesktop)
	aliceDesk := s.dial("alice", wire.PlatformDesktop)
	aliceMob := s.dial("alice", wire.PlatformMobile)

	post := func(secretHdr, gatewayHdr string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, internal.URL+gateway.PushPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", gateway.PushContentType)
		if secretHdr != "" {
			req.Header.Set(gateway.PushSecretHeader, secretHdr)
		}
		if gatewayHdr != "" {
			req.Header.Set(gateway.PushGatewayHeader, gatewayHdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	m := text("alice", "bob", "pushed")
	m.ServerID, m.Seq, m.SendSeq, m.Platform = "srv01-000000000000000", 11, 3, wire.PlatformMobile
	echo := *m
	echo.Seq = 0
	batch := gateway.AppendPushBatch(nil, []msgserver.Delivery{
		{UserID: "bob", Msg: m},
		{UserID: "alice", Msg: &echo, Echo: true}, // not to alice's mobile: the message came from there
		{UserID: "carol", Msg: m},                 // not connected here: skipped
	})

	refused := []struct {
		name              string
		secret, gatewayID string
		body              []byte
		status            int
		kind              string
	}{
		{"no secret", "", "gw-a", batch, http.StatusUnauthorized, `"UnAuthorized"`},
		{"wrong secret", "push-secret-for-testz", "gw-a", batch, http.StatusUnauthorized, `"UnAuthorized"`},
		{"another gateway", secret, "gw-b", batch, http.StatusMisdirectedRequest, `"ServiceNotFound"`},
		{"garbage", secret, "gw-a", []byte("garbage"), http.StatusBadRequest, `"BodyParsing"`},
		{"too large", secret, "gw-a", make([]byte, 65<<10), http.StatusRequestEntityTooLarge, `"PayloadTooLarge"`},
	}
	for _, tt := range refused {
		if status, body := post(tt.secret, tt.gatewayID, tt.body); status != tt.status || !strings.Contains(body, tt.kind) {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.status, tt.kind)
		}
	}
	resp, err := http.Get(internal.URL + gateway.PushPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}

	if status, body := post(secret, "gw-a", batch); status != http.StatusNoContent {
		t.Fatalf("push: %d %s", status, body)
	}
	expectMsg(t, bobDesk.next(), m, 11, 3)
	expectMsg(t, aliceDesk.next(), m, 0, 3)

	// Barrier: nothing refused above was delivered, and alice's mobile got
	// no echo: the next frame of each is this one.
	m2 := text("x", "y", "barrier")
	m2.ServerID, m2.Seq = "srv02-000000000000000", 12
	if status, body := post(secret, "", gateway.AppendPushBatch(nil, []msgserver.Delivery{
		{UserID: "bob", Msg: m2}, {UserID: "alice", Msg: m2},
	})); status != http.StatusNoContent {
		t.Fatalf("push without a gateway header: %d %s", status, body)
	}
	for _, c := range []*client{bobDesk, aliceDesk, aliceMob} {
		if got := c.next(); got.LocalID != m2.LocalID {
			t.Fatalf("%s/%d: got %q %q before the barrier", c.user, c.platform, got.LocalID, got.Content)
		}
	}

	s.gw.Close()
	if status, body := post(secret, "gw-a", batch); status != http.StatusServiceUnavailable {
		t.Fatalf("push to a closed gateway: %d %s", status, body)
	}
}

func TestNewPushHandlerChecks(t *testing.T) {
	s := newStack(t, stackOpts{noConsumer: true})
	for _, o := range []gateway.PushHandlerOptions{{Secret: "x"}, {GatewayID: "x"}} {
		if _, err := gateway.NewPushHandler(s.gw, o); err == nil {
			t.Fatalf("NewPushHandler(%+v) accepted", o)
		}
	}
	if _, err := gateway.NewPushHandler(nil, gateway.PushHandlerOptions{GatewayID: "x", Secret: "x"}); err == nil {
		t.Fatal("NewPushHandler(nil gateway) accepted")
	}
}
