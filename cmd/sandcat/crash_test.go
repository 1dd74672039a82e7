package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// The crash test: users stream messages over WebSocket (single and group),
// the process is killed with SIGKILL mid-stream and restarted on the same
// data directory. Then every ACKed message is pullable exactly once per
// recipient, with the seqs it was delivered with; no recv seq and no send
// seq is ever reused; messages that were not ACKed may exist, never twice.
func TestCrashRecovery(t *testing.T) {
	const (
		nUsers  = 6
		window  = 32   // frames in flight per sender
		killAt  = 3000 // ACKs before the SIGKILL
		groupEv = 5    // every 5th message of a sender goes to the group
	)
	if testing.Short() {
		t.Skip("the crash test streams thousands of messages")
	}
	in := newInstance(t)
	p := in.start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	users := make([]*account, nUsers)
	for i := range users {
		users[i] = p.register(ctx, fmt.Sprintf("User%d", i))
	}
	var memberIDs []string
	for _, u := range users[1:] {
		memberIDs = append(memberIDs, u.ID)
	}
	inv, err := users[0].API.CreateGroup(ctx, users[0].ID, "crash", "", memberIDs)
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	gid := inv.Info.ID

	// Phase 1: stream until killAt ACKs, then SIGKILL with frames in flight.
	recs := make([]*recorder, nUsers)
	conns := make([]*client.Conn, nUsers)
	var acked atomic.Int64
	for i, u := range users {
		recs[i] = newRecorder(window, &acked)
		conns[i] = recs[i].dial(ctx, t, u)
	}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for i := range users {
		senders.Add(1)
		go func() {
			defer senders.Done()
			recs[i].stream(stop, conns[i], users, i, gid, groupEv)
		}()
	}
	for acked.Load() < killAt {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d ACKs before the deadline", acked.Load())
		case <-p.exited:
			t.Fatalf("sandcat exited while streaming: %v", p.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	p.kill()
	close(stop)
	for _, c := range conns {
		<-c.Done()
	}
	senders.Wait()
	var sentTotal, inFlight int
	for _, r := range recs {
		sentTotal += len(r.sent)
		inFlight += len(r.sent) - len(r.acks)
	}
	t.Logf("SIGKILL after %d ACKs: %d frames sent, %d without an ACK", acked.Load(), sentTotal, inFlight)
	for i, r := range recs {
		if r.dupAcks > 0 {
			t.Errorf("user %d: %d duplicate ACKs before the crash", i, r.dupAcks)
		}
		if r.errAcks > 0 {
			t.Errorf("user %d: %d error ACKs before the crash", i, r.errAcks)
		}
		if d := dupServerIDs(r.live); len(d) > 0 {
			t.Errorf("user %d: delivered twice before the crash: %v", i, d)
		}
		last := int64(0)
		for _, f := range r.live {
			if f.seq == 0 {
				continue
			}
			if f.seq <= last {
				t.Errorf("user %d: pushed seq %d after seq %d", i, f.seq, last)
			}
			last = f.seq
		}
		prev := int64(0)
		for _, a := range r.ackOrder {
			if a.sendSeq <= prev {
				t.Errorf("user %d: ACK send_seq %d after %d", i, a.sendSeq, prev)
			}
			prev = a.sendSeq
		}
	}

	// What each user must find in its inbox: every ACKed message for it.
	expected := make([]map[string]bool, nUsers) // server_id set per recipient
	for i := range expected {
		expected[i] = map[string]bool{}
	}
	for s, r := range recs {
		for local, a := range r.acks {
			to := r.sent[local]
			for j := range users {
				if j != s && (to == gid || to == users[j].ID) {
					expected[j][a.serverID] = true
				}
			}
		}
	}

	// Phase 2: restart on the same data directory and pull until every
	// ACKed message is there (the consumer catches up on the bus).
	p2 := in.start()
	for _, u := range users {
		p2.login(ctx, u)
	}
	pulls := make([]pulled, nUsers)
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing := 0
		for i, u := range users {
			pulls[i] = pullAll(ctx, t, u)
			for id := range expected[i] {
				if _, ok := pulls[i].recv[id]; !ok {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ACKed deliveries still missing 90 s after the restart", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var notLive, unackedStored int
	for i := range users {
		live := map[string]bool{}
		for _, f := range recs[i].live {
			live[f.serverID] = true
		}
		for id := range expected[i] {
			if !live[id] {
				notLive++
			}
		}
		for _, m := range pulls[i].own {
			if _, ok := recs[i].acks[m.LocalID]; !ok && recs[i].sent[m.LocalID] != "" {
				unackedStored++
			}
		}
	}
	t.Logf("after the restart: %d ACKed deliveries had not been pushed before the crash; %d frames stored without an ACK",
		notLive, unackedStored)

	for i := range users {
		pl := pulls[i]
		// Exactly once per recipient: no server_id, no local_id, no seq twice.
		if len(pl.dupServer) > 0 {
			t.Errorf("user %d: server_ids pulled twice: %v", i, pl.dupServer)
		}
		if len(pl.dupLocal) > 0 {
			t.Errorf("user %d: a message stored twice under two server_ids (local_ids %v)", i, pl.dupLocal)
		}
		if len(pl.dupSeq) > 0 {
			t.Errorf("user %d: recv seqs reused: %v", i, pl.dupSeq)
		}
		if len(pl.dupSendSeq) > 0 {
			t.Errorf("user %d: send seqs reused: %v", i, pl.dupSendSeq)
		}
		// Delivered before the crash: stored with the same seq.
		for _, f := range recs[i].live {
			if f.seq == 0 {
				continue
			}
			m, ok := pl.recv[f.serverID]
			if !ok {
				t.Errorf("user %d: %s was delivered (seq %d) but is not in the inbox", i, f.serverID, f.seq)
			} else if m.Seq != f.seq {
				t.Errorf("user %d: %s delivered with seq %d, stored with seq %d", i, f.serverID, f.seq, m.Seq)
			}
		}
		// Own messages: every ACKed one, with its ACKed send_seq.
		for local, a := range recs[i].acks {
			m, ok := pl.own[a.serverID]
			if !ok {
				t.Errorf("user %d: own ACKed message %s (%s) not pullable by send_seq", i, a.serverID, local)
			} else if m.SendSeq != a.sendSeq || m.LocalID != local {
				t.Errorf("user %d: own %s: send_seq %d local %s, ACKed %d %s", i, a.serverID, m.SendSeq, m.LocalID, a.sendSeq, local)
			}
		}
		// Nothing that was never sent.
		for id, m := range pl.recv {
			if m.MsgType != wire.MsgTypeSingleMsg && m.MsgType != wire.MsgTypeGroupMsg {
				continue
			}
			sender := indexOf(users, m.SendID)
			if sender < 0 || recs[sender].sent[m.LocalID] == "" {
				t.Errorf("user %d: pulled %s (local %s from %s), which nobody sent", i, id, m.LocalID, m.SendID)
			}
		}
	}

	// Phase 3: the counters continue above everything issued before the
	// crash. Each user sends to the next one and to the group once more.
	for i := range users {
		recs[i] = newRecorder(window, &acked)
		conns[i] = recs[i].dial(ctx, t, users[i])
	}
	for i, u := range users {
		to := users[(i+1)%nUsers].ID
		for k, target := range []string{to, gid} {
			m := &wire.Msg{SendID: u.ID, ReceiverID: target, LocalID: fmt.Sprintf("after-%d-%d", i, k),
				MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText, Content: []byte("after the crash")}
			if target == gid {
				m.MsgType, m.GroupID = wire.MsgTypeGroupMsg, gid
			}
			recs[i].expectAck(m.LocalID)
			if err := conns[i].Send(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range users {
		for _, local := range []string{fmt.Sprintf("after-%d-0", i), fmt.Sprintf("after-%d-1", i)} {
			a := recs[i].waitAck(ctx, t, local)
			if a.sendSeq <= pulls[i].maxSendSeq {
				t.Errorf("user %d: send_seq %d after the restart, but %d was issued before", i, a.sendSeq, pulls[i].maxSendSeq)
			}
		}
	}
	// Each user gets one single message (from the previous user) and the
	// other users' group messages; the consumer stores them asynchronously.
	const wantAfter = 1 + nUsers - 1
	for i, u := range users {
		var fresh pulled
		var after []wire.Msg
		for deadline := time.Now().Add(60 * time.Second); ; {
			fresh, after = pullAll(ctx, t, u), nil
			for _, m := range fresh.recv {
				if strings.HasPrefix(m.LocalID, "after-") {
					after = append(after, m)
				}
			}
			if len(after) >= wantAfter {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("user %d: %d of %d messages sent after the restart in the inbox after 60 s", i, len(after), wantAfter)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, m := range after {
			if m.Seq <= pulls[i].maxSeq {
				t.Errorf("user %d: %s got recv seq %d after the restart, but %d was issued before", i, m.ServerID, m.Seq, pulls[i].maxSeq)
			}
		}
		if len(after) != wantAfter || len(fresh.dupSeq) > 0 || len(fresh.dupServer) > 0 {
			t.Errorf("user %d after the restart: %d new messages (want %d), dup seqs %v, dup server ids %v",
				i, len(after), wantAfter, fresh.dupSeq, fresh.dupServer)
		}
	}
	// Frames pushed after the restart (replays included) carry their stored seq.
	for i := range users {
		final := pullAll(ctx, t, users[i])
		for _, f := range recs[i].snapshotLive() {
			if f.seq == 0 {
				continue
			}
			if m, ok := final.recv[f.serverID]; !ok || m.Seq != f.seq {
				t.Errorf("user %d: pushed %s with seq %d after the restart; inbox has %v", i, f.serverID, f.seq, m.Seq)
			}
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

func indexOf(users []*account, id string) int {
	for i, u := range users {
		if u.ID == id {
			return i
		}
	}
	return -1
}

// recorder records what one user's connection sent and received.
type recorder struct {
	mu       sync.Mutex
	window   chan struct{}
	total    *atomic.Int64
	sent     map[string]string // local_id → receiver (user or group id)
	acks     map[string]ackInfo
	ackOrder []ackInfo
	waiters  map[string]chan ackInfo
	live     []frame
	dupAcks  int
	errAcks  int
}

type ackInfo struct {
	serverID string
	sendSeq  int64
}

type frame struct {
	serverID string
	seq      int64
	typ      wire.MsgType
}

func newRecorder(window int, total *atomic.Int64) *recorder {
	return &recorder{window: make(chan struct{}, window), total: total, sent: map[string]string{},
		acks: map[string]ackInfo{}, waiters: map[string]chan ackInfo{}}
}

func (r *recorder) dial(ctx context.Context, t *testing.T, u *account) *client.Conn {
	t.Helper()
	d := client.Dialer{OnMessage: r.onMessage}
	c, err := d.Dial(ctx, u.Login.WSAddr, u.ID, wire.PlatformDesktop, u.Login.Token)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func (r *recorder) onMessage(m *wire.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.MsgType != wire.MsgTypeMsgRecResp {
		r.live = append(r.live, frame{m.ServerID, m.Seq, m.MsgType})
		return
	}
	if m.ContentType == wire.ContentError {
		r.errAcks++
	} else if _, dup := r.acks[m.LocalID]; dup {
		r.dupAcks++
	} else {
		a := ackInfo{m.ServerID, m.SendSeq}
		r.acks[m.LocalID] = a
		r.ackOrder = append(r.ackOrder, a)
		r.total.Add(1)
		if w, ok := r.waiters[m.LocalID]; ok {
			w <- a
			delete(r.waiters, m.LocalID)
		}
	}
	select {
	case <-r.window:
	default:
	}
}

func (r *recorder) snapshotLive() []frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]frame(nil), r.live...)
}

// stream sends until stop or the connection ends, at most cap(window) frames
// without an ACK.
func (r *recorder) stream(stop <-chan struct{}, c *client.Conn, users []*account, me int, gid string, groupEvery int) {
	for i := 0; ; i++ {
		select {
		case r.window <- struct{}{}:
		case <-stop:
			return
		case <-c.Done():
			return
		}
		m := &wire.Msg{SendID: users[me].ID, LocalID: fmt.Sprintf("u%d-%d", me, i), MsgType: wire.MsgTypeSingleMsg,
			ContentType: wire.ContentText, Content: []byte(fmt.Sprintf("message %d of user %d", i, me)),
			CreateTime: time.Now().UnixMilli()}
		if i%groupEvery == groupEvery-1 {
			m.MsgType, m.ReceiverID, m.GroupID = wire.MsgTypeGroupMsg, gid, gid
		} else {
			m.ReceiverID = users[(me+1+i%(len(users)-1))%len(users)].ID
		}
		r.mu.Lock()
		r.sent[m.LocalID] = m.ReceiverID
		r.mu.Unlock()
		if err := c.Send(m); err != nil {
			return
		}
	}
}

// expectAck registers a wait for the ACK of localID (call before sending).
func (r *recorder) expectAck(localID string) {
	r.mu.Lock()
	r.waiters[localID] = make(chan ackInfo, 1)
	r.mu.Unlock()
}

func (r *recorder) waitAck(ctx context.Context, t *testing.T, localID string) ackInfo {
	t.Helper()
	r.mu.Lock()
	if a, ok := r.acks[localID]; ok {
		r.mu.Unlock()
		return a
	}
	w := r.waiters[localID]
	r.mu.Unlock()
	select {
	case a := <-w:
		return a
	case <-time.After(waitAck):
		t.Fatalf("no ACK of %s", localID)
	case <-ctx.Done():
		t.Fatalf("no ACK of %s: %v", localID, ctx.Err())
	}
	return ackInfo{}
}

// waitAck bounds the wait for one ACK (a guard against a hang, not a timing).
const waitAck = 30 * time.Second

// pulled is a user's whole inbox, pulled by its current seqs.
type pulled struct {
	recv       map[string]wire.Msg // server_id → copy received (seq > 0)
	own        map[string]wire.Msg // server_id → own message (by send_seq)
	maxSeq     int64
	maxSendSeq int64
	dupServer  []string
	dupLocal   []string
	dupSeq     []int64
	dupSendSeq []int64
}

func pullAll(ctx context.Context, t *testing.T, u *account) pulled {
	t.Helper()
	sq, err := u.API.Seq(ctx, u.ID)
	if err != nil {
		t.Fatalf("seq: %v", err)
	}
	ms, err := u.API.Pull(ctx, client.PullRequest{UserID: u.ID, SendEnd: sq.SendSeq, End: sq.Seq})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	p := pulled{recv: map[string]wire.Msg{}, own: map[string]wire.Msg{}, maxSeq: sq.Seq, maxSendSeq: sq.SendSeq}
	seqs, sendSeqs, locals := map[int64]bool{}, map[int64]bool{}, map[string]bool{}
	for _, m := range ms {
		if m.SendID == u.ID {
			if _, dup := p.own[m.ServerID]; dup {
				p.dupServer = append(p.dupServer, m.ServerID)
			}
			p.own[m.ServerID] = m
			if sendSeqs[m.SendSeq] {
				p.dupSendSeq = append(p.dupSendSeq, m.SendSeq)
			}
			sendSeqs[m.SendSeq] = true
			continue
		}
		if _, dup := p.recv[m.ServerID]; dup {
			p.dupServer = append(p.dupServer, m.ServerID)
		}
		p.recv[m.ServerID] = m
		if seqs[m.Seq] {
			p.dupSeq = append(p.dupSeq, m.Seq)
		}
		seqs[m.Seq] = true
		if m.LocalID != "" {
			key := m.SendID + "/" + m.LocalID
			if locals[key] {
				p.dupLocal = append(p.dupLocal, key)
			}
			locals[key] = true
		}
	}
	sort.Slice(p.dupSeq, func(i, j int) bool { return p.dupSeq[i] < p.dupSeq[j] })
	return p
}

func dupServerIDs(fs []frame) []string {
	seen := map[string]bool{}
	var dup []string
	for _, f := range fs {
		if f.seq == 0 && f.typ != wire.MsgTypeSingleMsg && f.typ != wire.MsgTypeGroupMsg {
			continue
		}
		if seen[f.serverID] {
			dup = append(dup, f.serverID)
		}
		seen[f.serverID] = true
	}
	return dup
}
