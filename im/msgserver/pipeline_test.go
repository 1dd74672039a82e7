package msgserver_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/msgserver/msgtest"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// memBus records publishes (a double of the bus for the producer's logic).
type memBus struct {
	mu   sync.Mutex
	recs []bus.Record
	err  error
}

func (b *memBus) Publish(_ context.Context, key string, v []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	b.recs = append(b.recs, bus.Record{Offset: int64(len(b.recs) + 1), Key: key, Value: slices.Clone(v)})
	return nil
}

func (b *memBus) Consume(context.Context, string, bus.Handler) error { return errors.New("unused") }

// pushes records deliveries.
type pushes struct {
	mu sync.Mutex
	ds []msgserver.Delivery
}

func (p *pushes) Push(_ context.Context, ds []msgserver.Delivery) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ds = append(p.ds, ds...)
}

func (p *pushes) take() []msgserver.Delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	ds := p.ds
	p.ds = nil
	return ds
}

type rig struct {
	bus      *memBus
	prod     *msgserver.Producer
	cons     *msgserver.Consumer
	inbox    *msgtest.Inbox
	history  *msgtest.History
	seqs     *msgtest.Seqs
	groups   *msgtest.Groups
	members  *msgserver.MemberCache
	pushes   *pushes
	consumed int
}

func newRig(t *testing.T) *rig {
	r := &rig{bus: &memBus{}, inbox: msgtest.NewInbox(), history: &msgtest.History{}, seqs: msgtest.NewSeqs(),
		groups: msgtest.NewGroups(), pushes: &pushes{}}
	r.members = msgserver.NewMemberCache(r.groups, time.Hour, 0)
	r.prod = msgserver.NewProducer(r.bus, r.seqs)
	var err error
	r.cons, err = msgserver.NewConsumer(msgserver.ConsumerConfig{Bus: r.bus, Inbox: r.inbox, History: r.history,
		Seqs: r.seqs, Members: r.members, Pusher: r.pushes})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) send(t *testing.T, m *wire.Msg, to ...string) {
	t.Helper()
	if err := r.prod.Send(context.Background(), m, to); err != nil {
		t.Fatalf("send %s: %v", m.MsgType, err)
	}
}

// consume hands every record published since the last call to the consumer
// as one batch.
func (r *rig) consume(t *testing.T, redelivered bool) error {
	t.Helper()
	r.bus.mu.Lock()
	recs := slices.Clone(r.bus.recs[r.consumed:])
	r.bus.mu.Unlock()
	for i := range recs {
		recs[i].Redelivered = redelivered
	}
	err := r.cons.Handle(context.Background(), recs)
	if err == nil {
		r.consumed += len(recs)
	}
	return err
}

func chat(from, to, text string) *wire.Msg {
	return &wire.Msg{SendID: from, ReceiverID: to, LocalID: "l-" + text, MsgType: wire.MsgTypeSingleMsg,
		ContentType: wire.ContentText, Content: []byte(text), Platform: wire.PlatformMobile, CreateTime: 1}
}

func groupChat(from, gid, text string) *wire.Msg {
	return &wire.Msg{SendID: from, ReceiverID: gid, GroupID: gid, LocalID: "l-" + text, MsgType: wire.MsgTypeGroupMsg,
		ContentType: wire.ContentText, Content: []byte(text)}
}

type dv struct {
	user    string
	typ     wire.MsgType
	seq     int64
	sendSeq int64
	echo    bool
	recv    string
}

func summarize(ds []msgserver.Delivery) []dv {
	out := make([]dv, len(ds))
	for i, d := range ds {
		out[i] = dv{d.UserID, d.Msg.MsgType, d.Msg.Seq, d.Msg.SendSeq, d.Echo, d.Msg.ReceiverID}
	}
	return out
}

func TestProducerAssignsServerFields(t *testing.T) {
	r := newRig(t)
	before := time.Now().UnixMilli()
	m := chat("a", "b", "hi")
	m.Seq, m.SendSeq, m.ServerID = 99, 99, "client-chosen"
	r.send(t, m)
	if len(m.ServerID) != 21 || m.ServerID == "client-chosen" {
		t.Fatalf("server_id %q", m.ServerID)
	}
	if m.SendTime < before || m.SendSeq != 1 || m.Seq != 0 {
		t.Fatalf("send_time %d send_seq %d seq %d", m.SendTime, m.SendSeq, m.Seq)
	}
	if r.bus.recs[0].Key != "b" {
		t.Fatalf("key %q, want the receiver", r.bus.recs[0].Key)
	}
	got, _, err := msgserver.DecodeEnvelope(r.bus.recs[0].Value)
	if err != nil || got.ServerID != m.ServerID || got.SendSeq != 1 {
		t.Fatalf("published %+v, %v", got, err)
	}
}

func TestProducerSendSeqPerType(t *testing.T) {
	for ty := wire.MsgType(0); ty < 28; ty++ {
		cl := msgserver.Classify(ty)
		if !cl.Valid {
			continue
		}
		t.Run(ty.String(), func(t *testing.T) {
			r := newRig(t)
			m := &wire.Msg{SendID: "a", ReceiverID: "b", MsgType: ty, ServerID: "acked-id"}
			r.send(t, m)
			wantSeq := int64(0)
			if cl.SendSeq {
				wantSeq = 1
			}
			if m.SendSeq != wantSeq {
				t.Fatalf("send_seq %d, want %d", m.SendSeq, wantSeq)
			}
			if cl.NewServerID == (m.ServerID == "acked-id") {
				t.Fatalf("server_id %q (new id expected: %v)", m.ServerID, cl.NewServerID)
			}
		})
	}
}

func TestProducerRefusesInvalid(t *testing.T) {
	r := newRig(t)
	for _, m := range []*wire.Msg{
		{SendID: "a", ReceiverID: "b", MsgType: wire.MsgTypeMsgRecResp},
		{SendID: "a", ReceiverID: "b", MsgType: 77},
		{SendID: "a", MsgType: wire.MsgTypeSingleMsg},
		{SendID: "a", ReceiverID: "b", MsgType: wire.MsgTypeFriendshipReceived},
	} {
		if err := r.prod.Send(context.Background(), m, nil); !errors.Is(err, msgserver.ErrInvalidMsg) {
			t.Errorf("%s: %v, want ErrInvalidMsg", m.MsgType, err)
		}
	}
	if len(r.bus.recs) != 0 {
		t.Fatalf("%d records published", len(r.bus.recs))
	}
	r.bus.err = errors.New("disk full")
	if err := r.prod.Send(context.Background(), chat("a", "b", "x"), nil); err == nil {
		t.Fatal("publish error not returned")
	}
}

func TestConsumerSingle(t *testing.T) {
	r := newRig(t)
	m := chat("a", "b", "hi")
	r.send(t, m)
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	es := r.inbox.All()
	if len(es) != 1 || es[0].ReceiverID != "b" || es[0].Seq != 1 || es[0].SendSeq != 1 || es[0].ServerID != m.ServerID {
		t.Fatalf("inbox %+v", es)
	}
	if h := r.history.All(); len(h) != 1 || h[0].ServerID != m.ServerID {
		t.Fatalf("history %+v (single chat is archived: B1)", h)
	}
	got := summarize(r.pushes.take())
	want := []dv{
		{"b", wire.MsgTypeSingleMsg, 1, 1, false, "b"},
		{"a", wire.MsgTypeSingleMsg, 0, 1, true, "b"}, // echo to a's other devices
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries\n got %v\nwant %v", got, want)
	}
}

func TestConsumerGroupFanOut(t *testing.T) {
	r := newRig(t)
	r.groups.Set("g", "a", "b", "c")
	m := groupChat("a", "g", "hello")
	r.send(t, m)
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	var es []string
	for _, e := range r.inbox.All() {
		es = append(es, fmt.Sprintf("%s/%d/%d", e.ReceiverID, e.Seq, e.SendSeq))
	}
	if want := []string{"g/0/1", "b/1/0", "c/1/0"}; fmt.Sprint(es) != fmt.Sprint(want) {
		t.Fatalf("inbox %v, want %v", es, want)
	}
	got := summarize(r.pushes.take())
	want := []dv{
		{"a", wire.MsgTypeGroupMsg, 0, 1, true, "g"},
		{"b", wire.MsgTypeGroupMsg, 1, 0, false, "g"},
		{"c", wire.MsgTypeGroupMsg, 1, 0, false, "g"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries\n got %v\nwant %v", got, want)
	}
	if len(r.history.All()) != 1 {
		t.Fatal("group chat not archived")
	}
}

func TestConsumerGroupExplicitRecipients(t *testing.T) {
	r := newRig(t)
	r.groups.Set("g", "a", "b")
	// Removed members c and d are no longer in the store: the API names them.
	r.send(t, &wire.Msg{SendID: "a", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupRemoveMember},
		"a", "b", "c", "d", "c")
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, d := range r.pushes.take() {
		users = append(users, d.UserID)
	}
	if want := []string{"a", "b", "c", "d"}; fmt.Sprint(users) != fmt.Sprint(want) {
		t.Fatalf("pushed to %v, want %v", users, want)
	}
}

func TestConsumerMemberCacheInvalidation(t *testing.T) {
	r := newRig(t)
	r.groups.Set("g", "a", "b")
	r.send(t, groupChat("a", "g", "1"))
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	r.pushes.take()
	// The API adds c to the store, then sends GroupInviteNew: c must get it.
	r.groups.Set("g", "a", "b", "c")
	r.send(t, &wire.Msg{SendID: "a", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupInviteNew,
		Content: wire.EncodeStrings([]string{"c"})})
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	if n := len(r.pushes.take()); n != 3 {
		t.Fatalf("invite notice: %d deliveries, want 3 (echo, b, c)", n)
	}
	// b exits: the store drops b first; the exit notice itself still reaches
	// the cached members, and the next message does not.
	r.groups.Set("g", "a", "c")
	r.send(t, &wire.Msg{SendID: "b", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupMemberExit})
	r.send(t, groupChat("a", "g", "2"))
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	got := summarize(r.pushes.take())
	var users []string
	for _, d := range got {
		users = append(users, d.user)
	}
	if want := []string{"b", "a", "c", "a", "c"}; fmt.Sprint(users) != fmt.Sprint(want) {
		t.Fatalf("pushed to %v, want %v", users, want)
	}
}

func TestConsumerSignallingIsRelayedNotStored(t *testing.T) {
	r := newRig(t)
	for _, ty := range []wire.MsgType{14, 16, 19, 21, 22} {
		r.send(t, &wire.Msg{SendID: "a", ReceiverID: "b", MsgType: ty, ContentType: wire.ContentVideoCall})
	}
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	if n := len(r.inbox.All()); n != 0 {
		t.Fatalf("%d inbox entries for signalling", n)
	}
	if r.seqs.Recv("b") != 0 {
		t.Fatal("signalling consumed a recv seq")
	}
	ds := r.pushes.take()
	if len(ds) != 10 {
		t.Fatalf("%d deliveries, want 5 to b and 5 echoes", len(ds))
	}
}

func TestConsumerReadAndReceived(t *testing.T) {
	r := newRig(t)
	m := chat("a", "b", "hi")
	r.send(t, m)
	// Same batch: b reads it (seq 1), then acknowledges a friend notice.
	r.send(t, &wire.Msg{SendID: "b", ReceiverID: "a", MsgType: wire.MsgTypeRead,
		Content: wire.MsgRead{MsgSeq: []int64{1}, UserID: "someone-else"}.MarshalBincode()})
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	es := r.inbox.All()
	if len(es) != 1 || !es[0].IsRead {
		t.Fatalf("inbox %+v: the Read of the same batch must apply", es)
	}
	ds := r.pushes.take()
	for _, d := range ds {
		if d.Msg.MsgType == wire.MsgTypeRead {
			t.Fatal("Read pushed")
		}
	}
	r.send(t, &wire.Msg{SendID: "b", ReceiverID: "a", MsgType: wire.MsgTypeFriendshipReceived, ServerID: m.ServerID})
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	if n := len(r.inbox.All()); n != 0 {
		t.Fatalf("%d entries left after FriendshipReceived", n)
	}
	if ds := r.pushes.take(); len(ds) != 0 {
		t.Fatalf("*Received pushed: %v", summarize(ds))
	}
}

func TestConsumerReceivedDeletesOnlyTheAckersCopy(t *testing.T) {
	r := newRig(t)
	r.groups.Set("g", "a", "b", "c")
	notice := &wire.Msg{SendID: "a", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupDismiss}
	r.send(t, notice)
	single := chat("a", "b", "hi")
	r.send(t, single)
	// Acks: b for the group notice, c for a message it never received.
	r.send(t, &wire.Msg{SendID: "b", ReceiverID: "a", MsgType: wire.MsgTypeGroupDismissOrExitReceived, ServerID: notice.ServerID})
	r.send(t, &wire.Msg{SendID: "c", ReceiverID: "a", MsgType: wire.MsgTypeFriendshipReceived, ServerID: single.ServerID})
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range r.inbox.All() {
		left = append(left, e.ReceiverID)
	}
	if want := []string{"g", "c", "b"}; fmt.Sprint(left) != fmt.Sprint(want) {
		t.Fatalf("entries left for %v, want %v (b's notice copy gone, the rest kept)", left, want)
	}
}

func TestConsumerBatchSavesOnce(t *testing.T) {
	r := newRig(t)
	r.groups.Set("g", "a", "b", "c")
	for i := range 10 {
		r.send(t, chat("a", "b", fmt.Sprint(i)))
		r.send(t, groupChat("b", "g", fmt.Sprint(i)))
	}
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	if r.inbox.Saves != 1 {
		t.Fatalf("%d Save calls for one batch, want 1", r.inbox.Saves)
	}
	if n := len(r.inbox.All()); n != 10+10*3 {
		t.Fatalf("%d entries", n)
	}
	if r.inbox.Finds != 0 {
		t.Fatalf("%d Find calls for records never delivered before", r.inbox.Finds)
	}
	// b's seqs follow the publish order.
	var seqs []int64
	for _, d := range r.pushes.take() {
		if d.UserID == "b" && !d.Echo {
			seqs = append(seqs, d.Msg.Seq)
		}
	}
	if !slices.IsSorted(seqs) || len(seqs) != 10 {
		t.Fatalf("b's seqs %v", seqs)
	}
}

func TestConsumerReplayAfterCrashKeepsSeqs(t *testing.T) {
	r := newRig(t)
	r.groups.Set("g", "a", "b", "c")
	r.send(t, chat("a", "b", "hi"))
	r.send(t, groupChat("a", "g", "all"))
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	first := summarize(r.pushes.take())
	// The bus redelivers the same batch (crash before the commit).
	r.consumed = 0
	if err := r.consume(t, true); err != nil {
		t.Fatal(err)
	}
	again := summarize(r.pushes.take())
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatalf("replay pushed\n%v\nfirst time\n%v", again, first)
	}
	if r.seqs.Recv("b") != 2 || r.seqs.Recv("c") != 1 {
		t.Fatalf("replay allocated new seqs: b=%d c=%d", r.seqs.Recv("b"), r.seqs.Recv("c"))
	}
	if n := len(r.inbox.All()); n != 1+3 {
		t.Fatalf("%d entries after replay, want 4", n)
	}
}

func TestConsumerSaveFailureIsRetriedNotPushed(t *testing.T) {
	r := newRig(t)
	fail := true
	r.inbox.Fail = func([]storage.InboxEntry) error {
		if fail {
			return errors.New("db down")
		}
		return nil
	}
	r.send(t, chat("a", "b", "hi"))
	if err := r.consume(t, false); err == nil {
		t.Fatal("Save error not returned")
	}
	if ds := r.pushes.take(); len(ds) != 0 {
		t.Fatal("pushed before the batch was stored")
	}
	fail = false
	if err := r.consume(t, true); err != nil {
		t.Fatal(err)
	}
	if len(r.inbox.All()) != 1 || len(r.pushes.take()) != 2 {
		t.Fatal("retry did not store and push")
	}
}

func TestConsumerDropsUndecodableRecords(t *testing.T) {
	r := newRig(t)
	r.bus.recs = append(r.bus.recs, bus.Record{Offset: 1, Value: []byte{9, 9}})
	r.send(t, chat("a", "b", "hi"))
	if err := r.consume(t, false); err != nil {
		t.Fatal(err)
	}
	if len(r.inbox.All()) != 1 {
		t.Fatal("the good record after a bad one was not processed")
	}
}

func TestMemberCache(t *testing.T) {
	ctx := context.Background()
	g := msgtest.NewGroups()
	g.Set("g", "a", "b")
	c := msgserver.NewMemberCache(g, time.Hour, 0)
	for range 3 {
		if ok, err := c.IsMember(ctx, "g", "a"); !ok || err != nil {
			t.Fatalf("a: %v %v", ok, err)
		}
	}
	if ok, _ := c.IsMember(ctx, "g", "z"); ok {
		t.Fatal("z is not a member")
	}
	if g.Loads != 1 {
		t.Fatalf("%d loads, want 1", g.Loads)
	}
	g.Set("g", "z")
	if ok, _ := c.IsMember(ctx, "g", "z"); ok {
		t.Fatal("cached set changed without invalidation")
	}
	c.Invalidate("g")
	if ok, _ := c.IsMember(ctx, "g", "z"); !ok {
		t.Fatal("invalidation did not reload")
	}
	ids, _ := c.Members(ctx, "nope")
	if len(ids) != 0 {
		t.Fatal("unknown group has members")
	}
}

func TestMemberCacheTTL(t *testing.T) {
	ctx := context.Background()
	g := msgtest.NewGroups()
	g.Set("g", "a")
	c := msgserver.NewMemberCache(g, time.Nanosecond, 0)
	_, _ = c.Members(ctx, "g")
	time.Sleep(time.Millisecond)
	_, _ = c.Members(ctx, "g")
	if g.Loads != 2 {
		t.Fatalf("%d loads, want 2 after expiry", g.Loads)
	}
}

type router map[string][]string

func (r router) Locate(_ context.Context, users []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, u := range users {
		if gws, ok := r[u]; ok {
			out[u] = gws
		}
	}
	return out, nil
}

type gwClient struct{ got map[string][]string }

func (g *gwClient) Push(_ context.Context, gw string, ds []msgserver.Delivery) error {
	for _, d := range ds {
		g.got[gw] = append(g.got[gw], d.UserID+":"+string(d.Msg.Content))
	}
	return nil
}

func TestPusherRoutesOnlyToHoldingGateways(t *testing.T) {
	gws := &gwClient{got: map[string][]string{}}
	p := msgserver.NewPusher(router{"a": {"gw1"}, "b": {"gw1", "gw2"}}, gws, nil)
	m := func(s string) *wire.Msg { return &wire.Msg{Content: []byte(s)} }
	p.Push(context.Background(), []msgserver.Delivery{
		{UserID: "a", Msg: m("1")}, {UserID: "b", Msg: m("2")}, {UserID: "offline", Msg: m("3")}, {UserID: "a", Msg: m("4")},
	})
	want := map[string][]string{"gw1": {"a:1", "b:2", "a:4"}, "gw2": {"b:2"}}
	if fmt.Sprint(gws.got) != fmt.Sprint(want) {
		t.Fatalf("pushed %v, want %v", gws.got, want)
	}
}

// BenchmarkConsumerHandle measures the consumer's own work per record
// (decode, seqs, inbox layout, deliveries) over in-memory doubles, in
// batches of 256 single messages.
func BenchmarkConsumerHandle(b *testing.B) {
	seqs := msgtest.NewSeqs()
	cons, err := msgserver.NewConsumer(msgserver.ConsumerConfig{Bus: &memBus{}, Inbox: nopInbox{}, History: nopHistory{},
		Seqs: seqs, Members: msgserver.NewMemberCache(msgtest.NewGroups(), time.Hour, 0), Pusher: &nopPusher{}})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]bus.Record, 256)
	for i := range recs {
		m := chat("a", fmt.Sprintf("u%d", i%16), "a message of about a hundred bytes, like the baselines use..........")
		m.ServerID = fmt.Sprintf("s%020d", i)
		recs[i] = bus.Record{Offset: int64(i + 1), Value: msgserver.EncodeEnvelope(m, nil)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := cons.Handle(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

type nopInbox struct{}

func (nopInbox) Save(context.Context, []storage.InboxEntry) error { return nil }
func (nopInbox) Find(context.Context, string) ([]storage.InboxEntry, error) {
	return nil, nil
}
func (nopInbox) DeleteByServerID(context.Context, string) error      { return nil }
func (nopInbox) DeleteBySeqs(context.Context, string, []int64) error { return nil }
func (nopInbox) MarkRead(context.Context, string, []int64) error     { return nil }

type nopHistory struct{}

func (nopHistory) Append(context.Context, []wire.Msg) error { return nil }

type nopPusher struct{}

func (*nopPusher) Push(context.Context, []msgserver.Delivery) {}

// batchStore writes through to the rig's inbox and history in one call.
type batchStore struct {
	r     *rig
	calls int
	fail  error
}

func (b *batchStore) SaveBatch(ctx context.Context, es []storage.InboxEntry, h []wire.Msg) error {
	b.calls++
	if b.fail != nil {
		return b.fail
	}
	if len(es) > 0 {
		if err := b.r.inbox.Save(ctx, es); err != nil {
			return err
		}
	}
	return b.r.history.Append(ctx, h)
}

func TestConsumerBatchStore(t *testing.T) {
	tests := []struct {
		name      string
		fail      error
		wantCalls int
		wantErr   bool
		wantPush  int
		wantInbox int
		wantHist  int
	}{
		{"one call stores inbox and history", nil, 1, false, 2 * 3, 3, 3},
		{"a failure is returned and nothing is pushed", errors.New("disk full"), 1, true, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			bs := &batchStore{r: r, fail: tt.fail}
			var err error
			r.cons, err = msgserver.NewConsumer(msgserver.ConsumerConfig{Bus: r.bus, Inbox: r.inbox, History: r.history,
				Batch: bs, Seqs: r.seqs, Members: r.members, Pusher: r.pushes})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				r.send(t, chat("a", "b", fmt.Sprint(i)))
			}
			if err := r.consume(t, false); (err != nil) != tt.wantErr {
				t.Fatalf("consume error %v, want error %v", err, tt.wantErr)
			}
			if bs.calls != tt.wantCalls {
				t.Errorf("%d SaveBatch calls, want %d", bs.calls, tt.wantCalls)
			}
			if n := len(r.pushes.take()); n != tt.wantPush {
				t.Errorf("%d deliveries, want %d", n, tt.wantPush)
			}
			if n := len(r.inbox.All()); n != tt.wantInbox {
				t.Errorf("%d inbox entries, want %d", n, tt.wantInbox)
			}
			if n := len(r.history.All()); n != tt.wantHist {
				t.Errorf("%d history rows, want %d", n, tt.wantHist)
			}
		})
	}
}

// A sender retrying with the same idempotency key (after a crash that left
// it unsure whether its first send was durable) gets the message stored
// once: the retry keeps the server_id and is pushed again with the first
// seqs, whether it lands in a later batch or in the same one.
func TestProducerSendKeyedStoresOnce(t *testing.T) {
	for _, sameBatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("same batch %v", sameBatch), func(t *testing.T) {
			r := newRig(t)
			r.groups.Set("g", "a", "b", "c")
			ctx := context.Background()
			send := func(m *wire.Msg, key string) string {
				if err := r.prod.SendKeyed(ctx, m, nil, msgserver.FromServer, key); err != nil {
					t.Fatal(err)
				}
				return m.ServerID
			}
			id1 := send(groupChat("a", "g", "from Matrix"), "matrix:$e1")
			if !sameBatch {
				if err := r.consume(t, false); err != nil {
					t.Fatal(err)
				}
			}
			id2 := send(groupChat("a", "g", "from Matrix"), "matrix:$e1")
			other := send(groupChat("a", "g", "another"), "matrix:$e2")
			if id1 != id2 || id1 == other || id1 == "" {
				t.Fatalf("server_ids %q, %q (same key), %q (other key)", id1, id2, other)
			}
			if err := r.consume(t, false); err != nil {
				t.Fatal(err)
			}
			if n := len(r.inbox.All()); n != 2*3 {
				t.Fatalf("%d inbox entries, want 6 (two messages, each a sender copy and two members)", n)
			}
			if r.seqs.Recv("b") != 2 || r.seqs.Recv("c") != 2 {
				t.Fatalf("recv seqs b=%d c=%d, want 2 each (no seq for the retry)", r.seqs.Recv("b"), r.seqs.Recv("c"))
			}
			var toB []int64
			for _, d := range r.pushes.take() {
				if d.UserID == "b" {
					toB = append(toB, d.Msg.Seq)
				}
			}
			if fmt.Sprint(toB) != "[1 1 2]" {
				t.Fatalf("b was pushed seqs %v, want [1 1 2] (the retry again with its first seq)", toB)
			}
		})
	}
	if err := newRig(t).prod.SendKeyed(context.Background(), chat("a", "b", "x"), nil, msgserver.FromServer, ""); !errors.Is(err, msgserver.ErrInvalidMsg) {
		t.Fatalf("empty key: %v, want ErrInvalidMsg", err)
	}
}

func TestKeyedEnvelope(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if err := r.prod.SendKeyed(ctx, chat("a", "b", "keyed"), nil, msgserver.FromServer, "k"); err != nil {
		t.Fatal(err)
	}
	r.send(t, chat("a", "b", "plain"))
	tests := []struct {
		rec    []byte
		keyed  bool
		origin msgserver.Origin
	}{
		{r.bus.recs[0].Value, true, msgserver.FromServer},
		{r.bus.recs[1].Value, false, msgserver.FromConnection},
	}
	for i, tc := range tests {
		e, err := msgserver.DecodeRecord(tc.rec)
		if err != nil || e.Keyed != tc.keyed || e.Origin != tc.origin {
			t.Fatalf("record %d: %+v, %v; want keyed %v origin %d", i, e, err, tc.keyed, tc.origin)
		}
	}
	if tests[1].rec[0] != 2 {
		t.Fatalf("an unkeyed record is version %d, want 2 (readable by older binaries)", tests[1].rec[0])
	}
	bad := slices.Clone(tests[0].rec)
	bad[2] |= 0x80
	if _, err := msgserver.DecodeRecord(bad); !errors.Is(err, msgserver.ErrEnvelope) {
		t.Fatalf("unknown flag: %v, want ErrEnvelope", err)
	}
}
