package mongo_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	driver "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/mongo"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

// openAt opens an inbox on database name of the server at uri (closed at cleanup).
func openAt(t testing.TB, uri, name string, opts mongo.Options) *mongo.Inbox {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	in, err := mongo.Open(context.Background(), uri, name, opts)
	if err != nil {
		t.Fatalf("open inbox: %v", err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return in
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newDatabase returns a unique database name, dropped at cleanup.
func newDatabase(t testing.TB, uri string) string {
	t.Helper()
	name := "sandcat_test_" + ids.New()
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := driver.Connect(ctx, options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer func() { _ = c.Disconnect(ctx) }()
		if err := c.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return name
}

// openInbox opens an inbox on a fresh database, dropped at cleanup.
func openInbox(t testing.TB, uri string, opts mongo.Options) *mongo.Inbox {
	t.Helper()
	return openAt(t, uri, newDatabase(t, uri), opts)
}

func TestInboxConformance(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	tests := []struct {
		name string
		opts mongo.Options
	}{
		{"month", mongo.Options{}},
		{"day", mongo.Options{Period: mongo.PeriodDay}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Inbox(t, openInbox(t, uri, tc.opts))
		})
	}
}

func at(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

// msg returns a message from -> to with every field set.
func msg(from, to string, sendTime, seq, sendSeq int64) wire.Msg {
	rel := "rel-" + ids.New()
	return wire.Msg{
		SendID: from, ReceiverID: to, LocalID: ids.New(), ServerID: ids.New(),
		CreateTime: sendTime - 3, SendTime: sendTime, Seq: seq, MsgType: wire.MsgTypeSingleMsg,
		ContentType: wire.ContentText, Content: fmt.Appendf(nil, "hello %d/%d", seq, sendSeq),
		Platform: wire.PlatformDesktop, Avatar: "avatar-" + from, Nickname: "nick-" + from,
		RelatedMsgID: &rel, SendSeq: sendSeq,
	}
}

func save(t *testing.T, in storage.Inbox, msgs ...wire.Msg) {
	t.Helper()
	entries := make([]storage.InboxEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = storage.InboxEntry{Msg: m}
	}
	if err := in.Save(context.Background(), entries); err != nil {
		t.Fatalf("Save(%d entries): %v", len(entries), err)
	}
}

func pull(t *testing.T, in storage.Inbox, user string, sendStart, sendEnd, start, end int64) []wire.Msg {
	t.Helper()
	got, err := in.Pull(context.Background(), user, sendStart, sendEnd, start, end)
	if err != nil {
		t.Fatalf("Pull(%s, %d, %d, %d, %d): %v", user, sendStart, sendEnd, start, end, err)
	}
	return got
}

// sameList compares messages field by field, in order.
func sameList(t *testing.T, what string, got, want []wire.Msg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d:\n got  %v\n want %v", what, len(got), len(want), keys(got), keys(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Content, w.Content) {
			t.Fatalf("%s: message %d content %q, want %q", what, i, g.Content, w.Content)
		}
		g.Content, w.Content = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: message %d\n got  %+v related %s\n want %+v related %s\n order got %v want %v",
				what, i, g, deref(g.RelatedMsgID), w, deref(w.RelatedMsgID), keys(got), keys(want))
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func keys(msgs []wire.Msg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("t%d/s%d/ss%d", m.SendTime, m.Seq, m.SendSeq)
	}
	return out
}

func withSeq(m wire.Msg, seq int64) wire.Msg { m.Seq = seq; return m }

// countIn counts the documents of collection coll with server_id.
func countIn(t *testing.T, in *mongo.Inbox, coll, serverID string) int64 {
	t.Helper()
	n, err := in.Database().Collection(coll).CountDocuments(context.Background(), bson.D{{Key: "server_id", Value: serverID}})
	if err != nil {
		t.Fatalf("count %s in %s: %v", serverID, coll, err)
	}
	return n
}

func collections(t *testing.T, in *mongo.Inbox) []string {
	t.Helper()
	names, err := in.Collections(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// currentPartition is the partition Open creates for now.
func currentPartition(in *mongo.Inbox) string { return in.CollectionFor(time.Now().UnixMilli()) }

func TestPartitionRouting(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	tests := []struct {
		period mongo.Period
		times  []string // send times, ascending
		want   []string // partition of each
	}{
		{mongo.PeriodMonth,
			[]string{"2024-01-31T23:59:59.999Z", "2024-02-01T00:00:00Z", "2024-02-29T23:59:59.999Z", "2024-03-01T00:00:00Z"},
			[]string{"single_msg_box_202401", "single_msg_box_202402", "single_msg_box_202402", "single_msg_box_202403"}},
		{mongo.PeriodDay,
			[]string{"2024-02-28T23:59:59.999Z", "2024-02-29T00:00:00Z", "2024-02-29T23:59:59.999Z", "2024-03-01T00:00:00Z"},
			[]string{"single_msg_box_20240228", "single_msg_box_20240229", "single_msg_box_20240229", "single_msg_box_20240301"}},
	}
	for _, tc := range tests {
		t.Run(tc.period.String(), func(t *testing.T) {
			in := openInbox(t, uri, mongo.Options{Period: tc.period})
			me, friend := ids.New(), ids.New()
			// received messages: the seq order is not the send_time order (the
			// message of the first partition was delivered late, so it got seq 3)
			var recv []wire.Msg
			for i, s := range tc.times {
				seq := []int64{3, 1, 4, 2}[i]
				recv = append(recv, msg(friend, me, at(s), seq, int64(10+i)))
			}
			// sent by me, one per partition, in reverse order of send_seq
			var sent []wire.Msg
			for i, s := range tc.times {
				sent = append(sent, msg(me, friend, at(s)+0, int64(50+i), int64(len(tc.times)-i)))
			}
			save(t, in, append(slices.Clone(recv), sent...)...) // one Save across partitions
			for i, m := range recv {
				if got := in.CollectionFor(m.SendTime); got != tc.want[i] {
					t.Fatalf("CollectionFor(%s) = %s, want %s", tc.times[i], got, tc.want[i])
				}
				for _, c := range slices.Compact(slices.Clone(tc.want)) {
					want := int64(0)
					if c == tc.want[i] {
						want = 1
					}
					if n := countIn(t, in, c, m.ServerID); n != want {
						t.Fatalf("message at %s: %d documents in %s, want %d", tc.times[i], n, c, want)
					}
				}
			}
			wantColls := slices.Compact(slices.Clone(tc.want))
			if cur := currentPartition(in); !slices.Contains(wantColls, cur) {
				wantColls = append(wantColls, cur) // created by Open; later than 2024
			}
			if got := collections(t, in); !slices.Equal(got, wantColls) {
				t.Fatalf("Collections = %v, want %v", got, wantColls)
			}
			// every partition answers, in the §2.4 order: send_time, then seq
			// (received) or send_seq (own); own messages have seq 0
			var want []wire.Msg
			for i := range tc.times {
				// same send_time: received sort by seq, own by send_seq
				r, s := recv[i], withSeq(sent[i], 0)
				if r.Seq < s.SendSeq {
					want = append(want, r, s)
				} else {
					want = append(want, s, r)
				}
			}
			sameList(t, "pull across partitions", pull(t, in, me, 0, 100, 0, 100), want)
			sameList(t, "recv (1,3]", pull(t, in, me, 0, 0, 1, 3), []wire.Msg{recv[0], recv[3]})
			// Find, MarkRead, DeleteBySeqs, DeleteByServerID reach every partition
			if got, err := in.Find(context.Background(), recv[3].ServerID); err != nil || len(got) != 1 {
				t.Fatalf("Find = %d, %v", len(got), err)
			}
			if err := in.MarkRead(context.Background(), me, []int64{1, 3}); err != nil {
				t.Fatal(err)
			}
			var read []bool
			for _, m := range pull(t, in, me, 0, 0, 0, 100) {
				read = append(read, m.IsRead)
			}
			if !slices.Equal(read, []bool{true, true, false, false}) { // seqs 3, 1, 4, 2 in send_time order
				t.Fatalf("is_read = %v", read)
			}
			if err := in.DeleteBySeqs(context.Background(), me, []int64{3, 4}); err != nil {
				t.Fatal(err)
			}
			if err := in.DeleteByServerID(context.Background(), recv[3].ServerID); err != nil {
				t.Fatal(err)
			}
			r1 := recv[1]
			r1.IsRead = true
			sameList(t, "after deletes", pull(t, in, me, 0, 0, 0, 100), []wire.Msg{r1})
		})
	}
}

// The cap keeps the lowest seqs over all partitions, however the seqs are
// spread among them.
func TestPullCapAcrossPartitions(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	in := openInbox(t, uri, mongo.Options{})
	a, b := ids.New(), ids.New()
	n := storage.InboxPullLimit + 5
	msgs := make([]wire.Msg, n)
	jan, feb := at("2024-01-15T00:00:00Z"), at("2024-02-15T00:00:00Z")
	for i := range msgs {
		// odd seqs in February, even seqs in January; the five highest in January
		tm := feb + int64(i)
		if i%2 == 1 || i >= storage.InboxPullLimit {
			tm = jan + int64(i)
		}
		msgs[i] = msg(a, b, tm, int64(i+1), int64(i+1))
		msgs[i].Avatar, msgs[i].Nickname, msgs[i].RelatedMsgID, msgs[i].Content = "", "", nil, nil
	}
	save(t, in, msgs...)
	limit := int64(storage.InboxPullLimit)
	check := func(what string, got []wire.Msg, seqOf func(wire.Msg) int64, lo, hi int64) {
		t.Helper()
		var seqs []int64
		for _, m := range got {
			seqs = append(seqs, seqOf(m))
		}
		slices.Sort(seqs)
		if int64(len(seqs)) != hi-lo {
			t.Fatalf("%s: %d messages, want %d", what, len(seqs), hi-lo)
		}
		for i, s := range seqs {
			if s != lo+int64(i)+1 {
				t.Fatalf("%s: seqs are not exactly (%d, %d]: at %d found %d", what, lo, hi, i, s)
			}
		}
	}
	recvSeq := func(m wire.Msg) int64 { return m.Seq }
	sendSeq := func(m wire.Msg) int64 { return m.SendSeq }
	check("recv first page", pull(t, in, b, 0, 0, 0, int64(n)), recvSeq, 0, limit)
	check("recv next page", pull(t, in, b, 0, 0, limit, int64(n)), recvSeq, limit, int64(n))
	check("send first page", pull(t, in, a, 0, int64(n), 0, 0), sendSeq, 0, limit)
	check("send next page", pull(t, in, a, limit, int64(n), 0, 0), sendSeq, limit, int64(n))
}

func TestCleanPartitions(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	in := openInbox(t, uri, mongo.Options{})
	a, b := ids.New(), ids.New()
	kind := func(m wire.Msg, tp wire.MsgType) wire.Msg { m.MsgType = tp; return m }
	jan1 := msg(a, b, at("2024-01-05T00:00:00Z"), 1, 1)
	jan2 := kind(msg(a, b, at("2024-01-06T00:00:00Z"), 2, 2), wire.MsgTypeFriendApplyReq)
	jan2.IsRead = true
	jan3 := kind(msg(a, b, at("2024-01-07T00:00:00Z"), 3, 3), wire.MsgTypeGroupInvitation)
	jan4 := msg(a, b, at("2024-01-31T23:59:59.999Z"), 4, 4)
	feb5 := msg(a, b, at("2024-02-10T00:00:00Z"), 5, 5)
	feb6 := kind(msg(a, b, at("2024-02-11T00:00:00Z"), 6, 6), wire.MsgTypeFriendApplyReq)
	feb7 := msg(a, b, at("2024-02-15T00:00:00Z"), 7, 7) // at the cutoff: stays
	mar8 := msg(a, b, at("2024-03-01T00:00:00Z"), 8, 8)
	save(t, in, jan1, jan2, jan3, jan4, feb5, feb6, feb7, mar8)
	cutoff := at("2024-02-15T00:00:00Z")
	except := []wire.MsgType{wire.MsgTypeFriendApplyReq, wire.MsgTypeGroupInvitation}

	n, err := in.Clean(ctx, cutoff, except)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // jan1, jan4 (with their partition), feb5
		t.Fatalf("Clean = %d, want 3", n)
	}
	want := []string{"single_msg_box", "single_msg_box_202402", "single_msg_box_202403", currentPartition(in)}
	if got := collections(t, in); !slices.Equal(got, want) {
		t.Fatalf("after Clean collections %v, want %v (January dropped, survivors in the base)", got, want)
	}
	if c := countIn(t, in, "single_msg_box", jan2.ServerID) + countIn(t, in, "single_msg_box", jan3.ServerID); c != 2 {
		t.Fatalf("%d survivors in the base collection, want 2", c)
	}
	sameList(t, "after Clean", pull(t, in, b, 0, 0, 0, 100), []wire.Msg{jan2, jan3, feb6, feb7, mar8})
	sameList(t, "sender after Clean", pull(t, in, a, 0, 100, 0, 0),
		[]wire.Msg{withSeq(jan2, 0), withSeq(jan3, 0), withSeq(feb6, 0), withSeq(feb7, 0), withSeq(mar8, 0)})
	if n, err := in.Clean(ctx, cutoff, except); err != nil || n != 0 {
		t.Fatalf("second Clean = %d, %v; want 0", n, err)
	}
	// the survivors are ordinary entries: deleted by seq, cleaned without exceptions
	if err := in.DeleteBySeqs(ctx, b, []int64{3}); err != nil {
		t.Fatal(err)
	}
	if n, err := in.Clean(ctx, cutoff, nil); err != nil || n != 2 { // jan2 (base), feb6
		t.Fatalf("Clean without exceptions = %d, %v; want 2", n, err)
	}
	sameList(t, "after Clean without exceptions", pull(t, in, b, 0, 0, 0, 100), []wire.Msg{feb7, mar8})
	// a later cutoff drops February and March whole
	if n, err := in.Clean(ctx, at("2024-04-01T00:00:00Z"), nil); err != nil || n != 2 {
		t.Fatalf("Clean up to April = %d, %v; want 2", n, err)
	}
	want = []string{"single_msg_box", currentPartition(in)}
	if got := collections(t, in); !slices.Equal(got, want) {
		t.Fatalf("collections %v, want %v", got, want)
	}
	// a Save into a dropped period recreates its partition, with its indexes
	replay := msg(a, b, at("2024-03-02T00:00:00Z"), 9, 9)
	save(t, in, replay)
	save(t, in, replay)
	if c := countIn(t, in, "single_msg_box_202403", replay.ServerID); c != 1 {
		t.Fatalf("replay into a recreated partition: %d documents, want 1", c)
	}
}

// A Clean that stopped after copying the survivors and before dropping the
// partition is finished by the next one, without duplicates.
func TestCleanResumesAfterCrash(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	in := openInbox(t, uri, mongo.Options{})
	a, b := ids.New(), ids.New()
	kept := msg(a, b, at("2024-01-05T00:00:00Z"), 1, 1)
	kept.MsgType = wire.MsgTypeFriendApplyResp
	gone := msg(a, b, at("2024-01-06T00:00:00Z"), 2, 2)
	save(t, in, kept, gone)
	// the state after the copy: the survivor is in the partition and in the base
	var raw bson.Raw
	if err := in.Database().Collection("single_msg_box_202401").FindOne(ctx, bson.D{{Key: "server_id", Value: kept.ServerID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Database().Collection("single_msg_box").InsertOne(ctx, raw); err != nil {
		t.Fatal(err)
	}
	// while both copies exist, reads see one
	sameList(t, "during the copy", pull(t, in, b, 0, 0, 0, 10), []wire.Msg{kept, gone})
	if got, err := in.Find(ctx, kept.ServerID); err != nil || len(got) != 1 {
		t.Fatalf("Find during the copy = %d entries, %v; want 1", len(got), err)
	}
	n, err := in.Clean(ctx, at("2024-02-01T00:00:00Z"), []wire.MsgType{wire.MsgTypeFriendApplyResp})
	if err != nil || n != 1 {
		t.Fatalf("Clean = %d, %v; want 1", n, err)
	}
	if c := countIn(t, in, "single_msg_box", kept.ServerID); c != 1 {
		t.Fatalf("%d copies of the survivor, want 1", c)
	}
	sameList(t, "after Clean", pull(t, in, b, 0, 0, 0, 10), []wire.Msg{kept})
}

// Duplicates are rejected by the unique index, which SkipQueryIndexes keeps.
func TestSaveDuplicates(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("SkipQueryIndexes=%v", skip), func(t *testing.T) {
			testSaveDuplicates(t, openInbox(t, uri, mongo.Options{SkipQueryIndexes: skip}))
		})
	}
}

func testSaveDuplicates(t *testing.T, in *mongo.Inbox) {
	ctx := context.Background()
	a, b := ids.New(), ids.New()
	jan, feb := at("2024-01-10T00:00:00Z"), at("2024-02-10T00:00:00Z")
	first := []wire.Msg{msg(a, b, jan, 1, 1), msg(a, b, feb, 2, 2), msg(a, b, jan+1, 3, 3)}
	save(t, in, first...)
	replayOf := func(m wire.Msg) wire.Msg { m.Content = []byte("replayed"); m.IsRead = true; return m }
	// duplicates first, in the middle and last, in both partitions: the new
	// entries between them are all stored (the insert is unordered)
	fresh := []wire.Msg{msg(a, b, jan+2, 4, 4), msg(a, b, feb+1, 5, 5), msg(a, b, jan+3, 6, 6)}
	batch := []wire.Msg{replayOf(first[0]), fresh[0], replayOf(first[1]), fresh[1], fresh[1], fresh[2], replayOf(first[2])}
	save(t, in, batch...)
	save(t, in, batch...) // and the whole batch again
	all := append(slices.Clone(first), fresh...)
	slices.SortFunc(all, func(x, y wire.Msg) int { return int(x.SendTime - y.SendTime) })
	sameList(t, "after replays", pull(t, in, b, 0, 0, 0, 10), all)
	for _, c := range []string{"single_msg_box_202401", "single_msg_box_202402"} {
		n, err := in.Database().Collection(c).CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int64{"single_msg_box_202401": 4, "single_msg_box_202402": 2}[c]; n != want {
			t.Fatalf("%s holds %d documents, want %d", c, n, want)
		}
	}
	// an error that is not a duplicate is reported
	big := msg(a, b, jan+5, 7, 7)
	big.Content = make([]byte, 17<<20)
	if err := in.Save(ctx, []storage.InboxEntry{{Msg: big}}); err == nil {
		t.Fatal("Save of a 17 MB entry succeeded")
	}
}

// The documents keep the original's field names and BSON types (§4.4) and
// the fields it dropped (B10).
func TestDocumentShape(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	in := openInbox(t, uri, mongo.Options{})
	m := msg(ids.New(), ids.New(), at("2024-05-05T05:05:05Z"), 7, 8)
	m.GroupID = "g1"
	noRel := msg(ids.New(), ids.New(), at("2024-05-05T05:05:06Z"), 9, 10)
	noRel.RelatedMsgID, noRel.Content = nil, nil
	save(t, in, m, noRel)
	coll := in.Database().Collection("single_msg_box_202405")
	var raw bson.Raw
	if err := coll.FindOne(ctx, bson.D{{Key: "server_id", Value: m.ServerID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	fields := []struct {
		name string
		typ  bsontype.Type
	}{
		{"_id", bson.TypeObjectID},
		{"local_id", bson.TypeString}, {"server_id", bson.TypeString}, {"send_id", bson.TypeString},
		{"receiver_id", bson.TypeString}, {"group_id", bson.TypeString},
		{"create_time", bson.TypeInt64}, {"send_time", bson.TypeInt64}, {"seq", bson.TypeInt64}, {"send_seq", bson.TypeInt64},
		{"content_type", bson.TypeInt32}, {"msg_type", bson.TypeInt32},
		{"content", bson.TypeBinary}, {"is_read", bson.TypeBoolean},
		{"platform", bson.TypeInt32}, {"avatar", bson.TypeString}, {"nickname", bson.TypeString},
		{"related_msg_id", bson.TypeString},
	}
	elems, err := raw.Elements()
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != len(fields) {
		t.Errorf("document has %d fields, want %d: %v", len(elems), len(fields), raw)
	}
	for _, f := range fields {
		v, err := raw.LookupErr(f.name)
		if err != nil {
			t.Errorf("field %s missing: %v", f.name, err)
			continue
		}
		if v.Type != f.typ {
			t.Errorf("field %s is %v, want %v", f.name, v.Type, f.typ)
		}
	}
	if sub, data := raw.Lookup("content").Binary(); sub != 0 || string(data) != string(m.Content) {
		t.Errorf("content = subtype %d %q", sub, data)
	}
	if got := raw.Lookup("related_msg_id").StringValue(); got != *m.RelatedMsgID {
		t.Errorf("related_msg_id = %q", got)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "server_id", Value: noRel.ServerID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.LookupErr("related_msg_id"); err == nil {
		t.Errorf("related_msg_id stored for a message without one: %v", raw)
	}
	if sub, data := raw.Lookup("content").Binary(); sub != 0 || len(data) != 0 {
		t.Errorf("empty content stored as %v", raw.Lookup("content"))
	}
}

// An original server's single_msg_box (no platform, avatar, nickname,
// related_msg_id; possibly duplicates, since it had no unique index) is read
// as the base collection.
func TestReadsOriginalCollection(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	name := newDatabase(t, uri)
	c, err := driver.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	me, friend := ids.New(), ids.New()
	orig := func(seq int64, server string) bson.D {
		return bson.D{
			{Key: "local_id", Value: "l" + server}, {Key: "server_id", Value: server}, {Key: "send_id", Value: friend},
			{Key: "receiver_id", Value: me}, {Key: "group_id", Value: ""},
			{Key: "create_time", Value: int64(1700000000000)}, {Key: "send_time", Value: int64(1700000000000 + seq)},
			{Key: "seq", Value: seq}, {Key: "send_seq", Value: int64(0)},
			{Key: "content_type", Value: int32(1)}, {Key: "msg_type", Value: int32(0)},
			{Key: "content", Value: []byte("old")}, {Key: "is_read", Value: false},
		}
	}
	base := c.Database(name).Collection("single_msg_box")
	if _, err := base.InsertMany(ctx, []any{orig(1, "s1"), orig(2, "s2"), orig(2, "s2")}); err != nil {
		t.Fatal(err)
	}
	in := openAt(t, uri, name, mongo.Options{})
	got := pull(t, in, me, 0, 0, 0, 10)
	want := []wire.Msg{
		{SendID: friend, ReceiverID: me, LocalID: "ls1", ServerID: "s1", CreateTime: 1700000000000, SendTime: 1700000000001,
			Seq: 1, ContentType: 1, Content: []byte("old")},
		{SendID: friend, ReceiverID: me, LocalID: "ls2", ServerID: "s2", CreateTime: 1700000000000, SendTime: 1700000000002,
			Seq: 2, ContentType: 1, Content: []byte("old")},
	}
	sameList(t, "original documents", got, want)
	if got, err := in.Find(ctx, "s2"); err != nil || len(got) != 1 {
		t.Fatalf("Find(s2) = %d entries, %v; want 1", len(got), err)
	}
	// the original's indexes are kept, the others added
	specs, err := base.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	for _, n := range []string{"receiver_id_1_seq_1", "send_id_1_send_seq_1", "send_time_1", "msg_type_1"} {
		if !slices.Contains(names, n) {
			t.Errorf("base collection lacks index %s: %v", n, names)
		}
	}
}

func TestIndexesCreatedAtOpen(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	name := newDatabase(t, uri)
	in := openAt(t, uri, name, mongo.Options{})
	save(t, in, msg(ids.New(), ids.New(), at("2023-06-01T00:00:00Z"), 1, 1))
	// a second Open (another process) finds both partitions indexed
	openAt(t, uri, name, mongo.Options{})
	onlyUnique := openInbox(t, uri, mongo.Options{SkipQueryIndexes: true})
	specs, err := onlyUnique.Database().Collection(currentPartition(onlyUnique)).Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"_id_", "server_id_1_receiver_id_1"}) {
		t.Errorf("with SkipQueryIndexes the indexes are %v", names)
	}
	for _, coll := range []string{currentPartition(in), "single_msg_box_202306"} {
		specs, err := in.Database().Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range specs {
			unique := s.Unique != nil && *s.Unique
			got[s.Name] = unique
		}
		want := map[string]bool{"_id_": false, "receiver_id_1_seq_1": false, "send_id_1_send_seq_1": false,
			"send_time_1": false, "msg_type_1": false, "server_id_1_receiver_id_1": true}
		for n, unique := range want {
			u, ok := got[n]
			if !ok || (u != unique && n != "_id_") {
				t.Errorf("%s: index %s present %v unique %v, want unique %v (all: %v)", coll, n, ok, u, unique, got)
			}
		}
	}
}

// Two inboxes on one database (e.g. the api and a msgserver) see each
// other's partitions at once, and a partition dropped by one is recreated
// with its unique index by the other.
func TestPartitionsSharedByProcesses(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	name := newDatabase(t, uri)
	writer := openAt(t, uri, name, mongo.Options{})
	reader := openAt(t, uri, name, mongo.Options{})
	a, b := ids.New(), ids.New()
	m := msg(a, b, at("2020-05-05T00:00:00Z"), 1, 1)
	save(t, writer, m)
	sameList(t, "reader sees the new partition", pull(t, reader, b, 0, 0, 0, 10), []wire.Msg{m})
	if n, err := reader.Clean(ctx, at("2021-01-01T00:00:00Z"), nil); err != nil || n != 1 {
		t.Fatalf("Clean = %d, %v", n, err)
	}
	sameList(t, "writer sees the drop", pull(t, writer, b, 0, 0, 0, 10), nil)
	save(t, writer, m)
	save(t, writer, m)
	if c := countIn(t, writer, "single_msg_box_202005", m.ServerID); c != 1 {
		t.Fatalf("replays after the drop: %d documents, want 1", c)
	}
}

func TestOpenFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := mongo.Open(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300", "x", mongo.Options{}); err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if _, err := mongo.Open(ctx, "postgres://nope", "x", mongo.Options{}); err == nil {
		t.Fatal("Open of a non-mongodb URI succeeded")
	}
}

// Several processes writing the first entries of a new partition at once
// (e.g. msgservers at the start of a month), replays included: no error,
// no duplicate.
func TestConcurrentFirstWrites(t *testing.T) {
	uri := testsvc.StartFerretDB(t)
	ctx := context.Background()
	name := newDatabase(t, uri)
	const procs = 4
	inboxes := make([]*mongo.Inbox, procs)
	for i := range inboxes {
		inboxes[i] = openAt(t, uri, name, mongo.Options{})
	}
	a, b := ids.New(), ids.New()
	var msgs []wire.Msg
	for i := range 20 {
		msgs = append(msgs, msg(a, b, at("2019-07-01T00:00:00Z")+int64(i), int64(i+1), int64(i+1)))
	}
	entries := make([]storage.InboxEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = storage.InboxEntry{Msg: m}
	}
	errs := make(chan error, procs)
	for _, in := range inboxes {
		go func() { errs <- in.Save(ctx, entries) }()
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Save: %v", err)
		}
	}
	n, err := inboxes[0].Database().Collection("single_msg_box_201907").CountDocuments(ctx, bson.D{})
	if err != nil || n != int64(len(msgs)) {
		t.Fatalf("%d documents, %v; want %d", n, err, len(msgs))
	}
	sameList(t, "pull", pull(t, inboxes[1], b, 0, 0, 0, 100), msgs)
}
