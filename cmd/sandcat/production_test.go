package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/wire"
)

// TestProduction runs the production deployment as separate OS processes
// (1 api, 2 gateways, 2 msgservers of the real binary) over PostgreSQL,
// Redis, FerretDB, kfake, MinIO and Consul, and drives it with the wire
// client: users on different gateways become friends, chat and talk in a
// group; pushes go only to the gateways that hold the recipients; a
// msgserver killed mid-stream hands its partitions over without losing or
// duplicating anything; a gateway killed drops out of Consul and its users'
// messages stay pullable; SIGTERM deregisters every process and exits 0.
func TestProduction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FerretDB, kfake, MinIO, Consul and five sandcat processes")
	}
	const (
		partitions = 4
		nUsers     = 20 // every user is in the group
		nOnline    = 16 // users[nOnline:] never connect: they pull
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	d := startBackends(t, partitions)
	d.start(2, 2)
	gws := d.gws
	gwIndex := map[string]int{gws[0].wsAddr(): 0, gws[1].wsAddr(): 1}
	gwIDs := []string{d.gatewayID(gws[0]), d.gatewayID(gws[1])}

	// ---- Users: registered with the code the api logs, logged in. The
	// login's ws_addr is one of the advertised gateways, round robin.
	users := make([]*account, nUsers)
	userGW := make([]int, nUsers)
	gwOf := func(i int, lr *client.LoginResponse) int {
		g, ok := gwIndex[lr.WSAddr]
		if !ok {
			t.Fatalf("login of user %d: ws_addr %q is not an advertised gateway (%v)", i, lr.WSAddr, slices.Collect(maps.Keys(gwIndex)))
		}
		return g
	}
	picked := [2]int{}
	for i := range users {
		users[i] = d.api.p.register(ctx, fmt.Sprintf("User%02d", i))
		userGW[i] = gwOf(i, users[i].Login)
		picked[userGW[i]]++
		if i == 0 {
			for range 4 { // more logins: both gateways are picked
				d.api.p.login(ctx, users[0])
				picked[gwOf(0, users[0].Login)]++
			}
			userGW[0] = gwOf(0, users[0].Login)
		}
	}
	if picked[0] == 0 || picked[1] == 0 {
		t.Fatalf("round robin over two healthy gateways picked %v", picked)
	}
	t.Logf("%d logins: gateway-1 picked %d times, gateway-2 %d times", nUsers+4, picked[0], picked[1])

	peers := make([]*peer, nOnline)
	onGW := [2][]int{}
	for i := range nOnline {
		peers[i] = connect(ctx, t, users[i], fmt.Sprintf("User%02d", i), users[i].Login.WSAddr)
		onGW[userGW[i]] = append(onGW[userGW[i]], i)
	}
	if len(onGW[0]) < 3 || len(onGW[1]) < 3 {
		t.Fatalf("online users per gateway: %d and %d; want them spread", len(onGW[0]), len(onGW[1]))
	}
	annI, bobI := onGW[0][0], onGW[1][0]
	ann, bob := peers[annI], peers[bobI]
	for _, i := range []int{annI, bobI} {
		want := gwIDs[userGW[i]]
		d.waitUntil(nil, "online route of "+peers[i].name, func() error {
			if got := d.route(ctx, users[i].ID); got != want {
				return fmt.Errorf("route %q, want %q", got, want)
			}
			return nil
		})
	}

	// ---- Friends across gateways: the notices are pushed by a msgserver
	// to the gateway of each side.
	fs, err := ann.API.RequestFriend(ctx, client.FriendRequest{UserID: ann.ID, FriendID: bob.ID, Source: "search"})
	if err != nil {
		t.Fatalf("friend request: %v", err)
	}
	bob.waitFrame(t, "the friend request", func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeFriendApplyReq })
	if _, err := bob.API.AgreeFriend(ctx, fs.FsID, nil, nil); err != nil {
		t.Fatalf("agree: %v", err)
	}
	ann.waitFrame(t, "the friend answer", func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeFriendApplyResp })

	// ---- 1:1 both ways between the gateways.
	for _, pair := range [][2]*peer{{ann, bob}, {bob, ann}} {
		from, to := pair[0], pair[1]
		ack := from.send(t, single(from.ID, to.ID, "hello from "+from.name))
		got := to.waitFrame(t, "a 1:1 message from "+from.name, func(m *wire.Msg) bool { return m.ServerID == ack.ServerID })
		if got.SendID != from.ID || got.Seq <= 0 || got.MsgType != wire.MsgTypeSingleMsg || string(got.Content) != "hello from "+from.name {
			t.Errorf("%s received %+v", to.name, got)
		}
	}

	// ---- A group of every user, members on both gateways and offline.
	var memberIDs []string
	for _, u := range users[1:] {
		memberIDs = append(memberIDs, u.ID)
	}
	owner := peers[0]
	inv, err := owner.API.CreateGroup(ctx, owner.ID, "everyone", "", memberIDs)
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	gid := inv.Info.ID
	for _, p := range peers[1:] {
		p.waitFrame(t, "the group invitation", func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeGroupInvitation })
	}
	senders := []*peer{ann, bob, peers[onGW[0][1]], peers[onGW[1][1]]}
	var groupMsgs []wire.Msg // the ACKs
	groupSender := map[string]*peer{}
	for round := range 2 {
		for _, s := range senders {
			ack := s.send(t, groupMsg(s.ID, gid, fmt.Sprintf("round %d from %s", round, s.name)))
			groupMsgs = append(groupMsgs, ack)
			groupSender[ack.ServerID] = s
		}
	}
	for _, p := range peers {
		seqs := map[int64]string{}
		for _, ack := range groupMsgs {
			if groupSender[ack.ServerID] == p {
				continue
			}
			got := p.waitFrame(t, "group message "+ack.ServerID, func(m *wire.Msg) bool { return m.ServerID == ack.ServerID })
			if got.MsgType != wire.MsgTypeGroupMsg || got.ReceiverID != gid || got.Seq <= 0 {
				t.Errorf("%s: group message %+v", p.name, got)
			}
			if other, dup := seqs[got.Seq]; dup {
				t.Errorf("%s: seq %d given to %s and %s", p.name, got.Seq, other, got.ServerID)
			}
			seqs[got.Seq] = got.ServerID
		}
	}
	for _, i := range slices.Concat(onGW[0], onGW[1]) {
		checkLiveAgainstInbox(ctx, t, peers[i].name, users[i], peers[i].frames())
	}
	for i := nOnline; i < nUsers; i++ { // offline members pull the group messages from MongoDB
		pl := pullAll(ctx, t, users[i])
		checkPulled(t, fmt.Sprintf("offline User%02d", i), pl)
		for _, ack := range groupMsgs {
			if m, ok := pl.recv[ack.ServerID]; !ok || m.Seq <= 0 || m.GroupID != gid || m.MsgType != wire.MsgTypeGroupMsg {
				t.Errorf("offline User%02d: group message %s not pullable (%+v)", i, ack.ServerID, m)
			}
		}
	}
	for _, p := range peers { // exactly once, now that everything arrived
		for _, ack := range groupMsgs {
			if n := len(p.withServerID(ack.ServerID)); groupSender[ack.ServerID] != p && n != 1 {
				t.Errorf("%s received group message %s %d times", p.name, ack.ServerID, n)
			}
		}
	}

	// ---- A file: uploaded through the api into MinIO, downloaded by another user.
	data := make([]byte, 300<<10)
	_, _ = rand.Read(data)
	name, err := ann.API.Upload(ctx, "photo.bin", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	got, _, err := bob.API.Download(ctx, name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download %s: %d bytes (want %d), %v", name, len(got), len(data), err)
	}
	mc, err := minio.New(d.minio.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(d.minio.AccessKey, d.minio.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := mc.StatObject(ctx, "sandcat", name, minio.StatObjectOptions{}); err != nil || st.Size != int64(len(data)) {
		t.Fatalf("the upload in MinIO: %+v, %v", st, err)
	}

	// ---- Push targeting: each gateway gets the deliveries of the users it
	// holds, and only those (its push and unrouted counters, /metrics).
	checkTargeted := func(what string, send func() wire.Msg, want [2]float64) {
		t.Helper()
		var before [2]map[string]float64
		for g := range gws {
			before[g] = scrape(t, gws[g].wsBase()+"/metrics")
		}
		send()
		var delta [2][2]float64 // gateway → pushed, unrouted
		d.waitUntil(nil, "pushes of "+what+" counted", func() error {
			for g := range gws {
				after := scrape(t, gws[g].wsBase()+"/metrics")
				delta[g] = [2]float64{
					after["sandcat_gateway_pushed_total"] - before[g]["sandcat_gateway_pushed_total"],
					after["sandcat_gateway_unrouted_total"] - before[g]["sandcat_gateway_unrouted_total"],
				}
				if delta[g][0] < want[g] {
					return fmt.Errorf("%s: %v deliveries pushed so far, want %v", gws[g].name, delta[g][0], want[g])
				}
			}
			return nil
		})
		for g := range gws {
			if delta[g][0] != want[g] || delta[g][1] != 0 {
				t.Errorf("%s: %s got %v deliveries (want %v), %v for users it does not hold (want 0)",
					what, gws[g].name, delta[g][0], want[g], delta[g][1])
			}
		}
		t.Logf("push targeting, %s: gateway-1 got %v deliveries, gateway-2 %v, none for users they do not hold", what, delta[0][0], delta[1][0])
	}
	// 1:1 from ann (gateway-1) to bob (gateway-2): bob's copy to gateway-2,
	// the echo for ann's other devices to gateway-1.
	checkTargeted("a 1:1 message", func() wire.Msg {
		ack := ann.send(t, single(ann.ID, bob.ID, "targeted"))
		bob.waitFrame(t, "the targeted message", func(m *wire.Msg) bool { return m.ServerID == ack.ServerID })
		return ack
	}, [2]float64{1, 1})
	// A group message from ann: one delivery per online member on each
	// gateway, plus ann's echo on gateway-1.
	checkTargeted("a group message", func() wire.Msg {
		return ann.send(t, groupMsg(ann.ID, gid, "targeted group"))
	}, [2]float64{float64(len(onGW[0])), float64(len(onGW[1]))})

	for _, p := range peers {
		p.close()
	}

	// ---- Kill a msgserver while messages stream (both gateways, 1:1 and
	// group): the other takes its partitions over after the session timeout;
	// every ACKed message ends up in its recipients' inboxes exactly once.
	streamers := []int{onGW[0][0], onGW[0][1], onGW[0][2], onGW[1][0], onGW[1][1], onGW[1][2]}
	sAccts := make([]*account, len(streamers))
	for k, i := range streamers {
		sAccts[k] = users[i]
	}
	var acked atomic.Int64
	recs := make([]*recorder, len(streamers))
	conns := make([]*client.Conn, len(streamers))
	for k := range streamers {
		recs[k] = newRecorder(2, &acked)
		conns[k] = recs[k].dial(ctx, t, sAccts[k])
	}
	stop := make(chan struct{})
	var streaming sync.WaitGroup
	for k := range streamers {
		streaming.Add(1)
		go func() {
			defer streaming.Done()
			streamPaced(stop, conns[k], recs[k], sAccts, k, gid, 8, 250*time.Millisecond)
		}()
	}
	waitAcks := func(n int64, what string) {
		t.Helper()
		d.waitUntil(nil, what, func() error {
			if a := acked.Load(); a < n {
				return fmt.Errorf("%d ACKs", a)
			}
			return nil
		})
	}
	waitAcks(40, "ACKs before the msgserver is killed")
	victim, survivor := d.mss[0], d.mss[1]
	before := lastAssignment(survivor.p)
	atKill := acked.Load()
	killed := time.Now()
	victim.p.kill()
	var takeover, lapse time.Duration
	var taken assignment
	d.waitUntil(survivor.p, "the survivor takes every partition and consul drops the victim", func() error {
		if takeover == 0 {
			if a := lastAssignment(survivor.p); a.generation > before.generation && len(a.partitions) == partitions {
				takeover, taken = time.Since(killed), a
			}
		}
		if lapse == 0 {
			if es, err := d.passing(discovery.ServiceMsgServer); err == nil && len(es) == 1 {
				lapse = time.Since(killed)
			}
		}
		if takeover == 0 || lapse == 0 {
			return fmt.Errorf("takeover after %v, consul lapse after %v", takeover, lapse)
		}
		return nil
	})
	atTakeover := acked.Load()
	waitAcks(atTakeover+40, "ACKs after the takeover")
	close(stop)
	streaming.Wait()
	for _, c := range conns {
		_ = c.Close()
	}
	t.Logf("msgserver SIGKILL after %d ACKs: the survivor held all %d partitions (generation %d) %v later; consul dropped it after %v; %d ACKs meanwhile, %d in all",
		atKill, partitions, taken.generation, takeover.Round(time.Millisecond), lapse.Round(time.Millisecond),
		atTakeover-atKill, acked.Load())

	// What every member's inbox must hold: each ACKed message once.
	expected, own := make([]map[string]bool, nUsers), make([]map[string]bool, nUsers)
	for i := range expected {
		expected[i], own[i] = map[string]bool{}, map[string]bool{}
	}
	for k, r := range recs {
		if r.errAcks > 0 || r.dupAcks > 0 {
			t.Errorf("streamer %d: %d error ACKs, %d duplicate ACKs", k, r.errAcks, r.dupAcks)
		}
		from := streamers[k]
		for local, a := range r.acks {
			to := r.sent[local]
			own[from][a.serverID] = true
			for i := range users {
				if i != from && (to == gid || to == users[i].ID) {
					expected[i][a.serverID] = true
				}
			}
		}
	}
	stopped := time.Now()
	pulls := waitInboxes(ctx, t, users, expected, own)
	t.Logf("every ACKed delivery pullable %v after the stream stopped", time.Since(stopped).Round(time.Millisecond))
	for i := range users {
		checkPulled(t, fmt.Sprintf("User%02d", i), pulls[i])
	}
	for k, r := range recs {
		i := streamers[k]
		name := fmt.Sprintf("streamer User%02d", i)
		checkLiveFrames(t, name, r.snapshotLive(), pulls[i])
		for local, a := range r.acks { // own ACKed messages, by send_seq
			if m, ok := pulls[i].own[a.serverID]; !ok || m.SendSeq != a.sendSeq || m.LocalID != local {
				t.Errorf("%s: own ACKed %s (send_seq %d) pulled as %+v", name, a.serverID, a.sendSeq, m)
			}
		}
	}

	// ---- Restart Redis: counters, routes and caches are lost; seqs go on
	// above everything issued before (the durable ceilings), never repeat.
	// Ann and Bob stay connected across the restart: their gateways put
	// the routes back, and live delivery resumes.
	ann, bob = connect(ctx, t, users[annI], "Ann", gws[0].wsAddr()), connect(ctx, t, users[bobI], "Bob", gws[1].wsAddr())
	d.waitUntil(nil, "bob's route", func() error {
		if got := d.route(ctx, bob.ID); got != gwIDs[1] {
			return fmt.Errorf("route %q", got)
		}
		return nil
	})
	restarted := time.Now()
	d.redis.Restart(t)
	d.waitReady()
	d.waitUntil(nil, "bob's route back after the redis restart", func() error {
		if got := d.route(ctx, bob.ID); got != gwIDs[1] {
			return fmt.Errorf("route %q", got)
		}
		return nil
	})
	t.Logf("redis restarted: the routes of connected users were back %v later", time.Since(restarted).Round(time.Millisecond))
	ackS := ann.send(t, single(ann.ID, bob.ID, "after the redis restart"))
	ackG := ann.send(t, groupMsg(ann.ID, gid, "after the redis restart"))
	for _, ack := range []wire.Msg{ackS, ackG} {
		if ack.SendSeq <= pulls[annI].maxSendSeq {
			t.Errorf("after the redis restart: ann's send_seq %d, but %d was issued before", ack.SendSeq, pulls[annI].maxSendSeq)
		}
	}
	for _, ack := range []wire.Msg{ackS, ackG} { // live, once bob's new route is there
		got := bob.waitFrame(t, "a message after the redis restart", func(m *wire.Msg) bool { return m.ServerID == ack.ServerID })
		if got.Seq <= pulls[bobI].maxSeq {
			t.Errorf("after the redis restart: bob got seq %d, but %d was issued before", got.Seq, pulls[bobI].maxSeq)
		}
	}
	afterRecv, afterOwn := make([]map[string]bool, nUsers), make([]map[string]bool, nUsers)
	for i := range users {
		afterRecv[i], afterOwn[i] = map[string]bool{}, map[string]bool{}
		if i == annI {
			afterOwn[i][ackS.ServerID], afterOwn[i][ackG.ServerID] = true, true
		} else {
			afterRecv[i][ackG.ServerID] = true
		}
	}
	afterRecv[bobI][ackS.ServerID] = true
	for i, pl := range waitInboxes(ctx, t, users, afterRecv, afterOwn) {
		checkPulled(t, fmt.Sprintf("User%02d after the redis restart", i), pl)
		if m, ok := pl.recv[ackG.ServerID]; ok && m.Seq <= pulls[i].maxSeq {
			t.Errorf("User%02d: seq %d after the redis restart, but %d was issued before", i, m.Seq, pulls[i].maxSeq)
		}
	}
	ann.close()
	bob.close()

	// ---- Kill a gateway: it drops out of consul, messages to its users
	// are stored meanwhile, and they pull them after reconnecting to the other.
	gwA, gwB := gws[0], gws[1]
	ann = connect(ctx, t, users[annI], "Ann", gwA.wsAddr())
	var onB []*peer
	for _, i := range onGW[1][:3] {
		p := connect(ctx, t, users[i], fmt.Sprintf("User%02d", i), gwB.wsAddr())
		onB = append(onB, p)
		d.waitUntil(nil, "route of "+p.name, func() error {
			if got := d.route(ctx, p.ID); got != gwIDs[1] {
				return fmt.Errorf("route %q", got)
			}
			return nil
		})
	}
	gwB.p.kill()
	killed = time.Now()
	for _, p := range onB {
		select {
		case <-p.conn.Done():
		case <-time.After(waitEvent):
			t.Fatalf("%s's connection outlived its gateway", p.name)
		}
	}
	var outage []wire.Msg
	sendOutage := func(tag string) {
		for _, p := range onB {
			outage = append(outage, ann.send(t, single(ann.ID, p.ID, tag+" to "+p.name)))
		}
		outage = append(outage, ann.send(t, groupMsg(ann.ID, gid, tag+" to the group")))
	}
	sendOutage("right after the crash")
	d.waitPassing(discovery.ServiceGateway, 1)
	d.waitPassing(discovery.ServiceGatewayPush, 1)
	t.Logf("gateway SIGKILL: dropped from consul's passing set %v later", time.Since(killed).Round(time.Millisecond))
	sendOutage("after the lapse")

	for _, p := range onB {
		// The api's watcher follows consul: once it answers the survivor,
		// it keeps answering it.
		d.waitUntil(nil, "a login answering the surviving gateway", func() error {
			d.api.p.login(ctx, p.account)
			if p.Login.WSAddr != gwA.wsAddr() {
				return fmt.Errorf("ws_addr %s", p.Login.WSAddr)
			}
			return nil
		})
		for range 2 {
			d.api.p.login(ctx, p.account)
			if p.Login.WSAddr != gwA.wsAddr() {
				t.Fatalf("login after the gateway died: ws_addr %s, want %s", p.Login.WSAddr, gwA.wsAddr())
			}
		}
	}
	var moved []*peer
	for _, p := range onB {
		np := connect(ctx, t, p.account, p.name, p.Login.WSAddr)
		moved = append(moved, np)
		d.waitUntil(nil, "route of "+p.name+" on the survivor", func() error {
			if got := d.route(ctx, p.ID); got != gwIDs[0] {
				return fmt.Errorf("route %q", got)
			}
			return nil
		})
	}
	// Everything ACKed while they were away is pullable (once the
	// msgservers have stored it), exactly once.
	wantBack := make([]map[string]bool, len(onB))
	noOwn := make([]map[string]bool, len(onB))
	movedAccts := make([]*account, len(onB))
	for k, p := range onB {
		wantBack[k], noOwn[k], movedAccts[k] = map[string]bool{}, map[string]bool{}, p.account
		for _, ack := range outage {
			if ack.ReceiverID == p.ID || ack.ReceiverID == gid {
				wantBack[k][ack.ServerID] = true
			}
		}
	}
	for k, pl := range waitInboxes(ctx, t, movedAccts, wantBack, noOwn) {
		checkPulled(t, onB[k].name+" after moving", pl)
	}
	ack := ann.send(t, single(ann.ID, moved[0].ID, "welcome back"))
	moved[0].waitFrame(t, "a message on the surviving gateway", func(m *wire.Msg) bool { return m.ServerID == ack.ServerID })
	for i, u := range users { // nothing twice anywhere
		checkPulled(t, fmt.Sprintf("User%02d at the end", i), pullAll(ctx, t, u))
	}

	// ---- SIGTERM: every remaining process deregisters and exits 0.
	for _, n := range []*node{gwA, survivor, d.api} {
		regs := n.registrations()
		if len(regs) == 0 {
			t.Errorf("%s logged no consul registration", n.name)
		}
		n.p.signal(syscall.SIGTERM)
		if code := n.p.wait(waitEvent); code != 0 {
			t.Errorf("%s: exit status %d after SIGTERM", n.name, code)
		}
		for id, svc := range regs {
			if d.catalog(svc)[id] {
				t.Errorf("%s: %s still in consul's catalog after a graceful exit", n.name, id)
			}
		}
		if n == gwA {
			// Its routes went with it (removed, not left to expire).
			for _, p := range append([]*peer{ann}, moved...) {
				if got := d.route(ctx, p.ID); got != "" {
					t.Errorf("%s's route is %q after the gateway stopped", p.name, got)
				}
			}
			select {
			case <-ann.conn.Done():
				if c := ann.conn.CloseCode(); c != 1001 {
					t.Errorf("the gateway's shutdown closed ann's connection with %d, want 1001", c)
				}
			case <-time.After(waitEvent):
				t.Errorf("ann's connection outlived the gateway's shutdown")
			}
		}
	}
	for _, n := range []*node{victim, gwB} { // the killed ones: registered, not passing
		for id, svc := range n.registrations() {
			es, err := d.passing(svc)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Service.ID == id {
					t.Errorf("%s was killed but %s still passes", n.name, id)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// A user's connection that keeps every frame.

type peer struct {
	*account
	name string
	conn *client.Conn

	mu    sync.Mutex
	got   []wire.Msg          // every frame but ACKs
	acks  map[string]wire.Msg // local_id → ACK
	wake  chan struct{}       // closed and replaced on every frame
	local int                 // local_ids issued
	tag   string              // prefix of this connection's local_ids
}

// connect dials wsAddr as the user's desktop.
func connect(ctx context.Context, t *testing.T, a *account, name, wsAddr string) *peer {
	t.Helper()
	p := &peer{account: a, name: name, acks: map[string]wire.Msg{}, wake: make(chan struct{}),
		tag: name + "-" + strings.ToLower(rand.Text()[:6])}
	dialer := client.Dialer{OnMessage: p.onMessage}
	c, err := dialer.Dial(ctx, wsAddr, a.ID, wire.PlatformDesktop, a.Login.Token)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, wsAddr, err)
	}
	p.conn = c
	t.Cleanup(c.Abort)
	return p
}

func (p *peer) onMessage(m *wire.Msg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.MsgType == wire.MsgTypeMsgRecResp {
		p.acks[m.LocalID] = *m
	} else {
		p.got = append(p.got, *m)
	}
	close(p.wake)
	p.wake = make(chan struct{})
}

// waitFor waits until find, called under the lock, returns true.
func (p *peer) waitFor(t *testing.T, what string, find func() bool) {
	t.Helper()
	deadline := time.After(waitEvent)
	for {
		p.mu.Lock()
		ok, wake := find(), p.wake
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-wake:
		case <-p.conn.Done():
			t.Fatalf("%s: connection ended waiting for %s: %v", p.name, what, p.conn.Err())
		case <-deadline:
			t.Fatalf("%s: no %s after %v", p.name, what, waitEvent)
		}
	}
}

// waitFrame waits for the first frame that matches and returns it.
func (p *peer) waitFrame(t *testing.T, what string, match func(*wire.Msg) bool) wire.Msg {
	t.Helper()
	var out wire.Msg
	p.waitFor(t, what, func() bool {
		for i := range p.got {
			if match(&p.got[i]) {
				out = p.got[i]
				return true
			}
		}
		return false
	})
	return out
}

// send sends m with a fresh local_id and returns its (successful) ACK.
func (p *peer) send(t *testing.T, m *wire.Msg) wire.Msg {
	t.Helper()
	p.mu.Lock()
	p.local++
	m.LocalID = fmt.Sprintf("%s-%d", p.tag, p.local)
	p.mu.Unlock()
	m.CreateTime = time.Now().UnixMilli()
	if err := p.conn.Send(m); err != nil {
		t.Fatalf("%s: send: %v", p.name, err)
	}
	var ack wire.Msg
	p.waitFor(t, "the ACK of "+m.LocalID, func() bool {
		a, ok := p.acks[m.LocalID]
		ack = a
		return ok
	})
	if ack.ContentType == wire.ContentError || ack.ServerID == "" {
		t.Fatalf("%s: %s refused: %s", p.name, m.LocalID, ack.Content)
	}
	ack.ReceiverID = m.ReceiverID
	return ack
}

func (p *peer) frames() []wire.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func (p *peer) withServerID(id string) []wire.Msg {
	var out []wire.Msg
	for _, m := range p.frames() {
		if m.ServerID == id {
			out = append(out, m)
		}
	}
	return out
}

func (p *peer) close() { _ = p.conn.Close() }

func single(from, to, text string) *wire.Msg {
	return &wire.Msg{SendID: from, ReceiverID: to, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText, Content: []byte(text)}
}

func groupMsg(from, gid, text string) *wire.Msg {
	return &wire.Msg{SendID: from, ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText, Content: []byte(text)}
}

// ---------------------------------------------------------------------------
// Checks

// checkPulled: an inbox holds each message once, with seqs never reused.
func checkPulled(t *testing.T, who string, pl pulled) {
	t.Helper()
	if len(pl.dupServer)+len(pl.dupLocal)+len(pl.dupSeq)+len(pl.dupSendSeq) > 0 {
		t.Errorf("%s: server_ids twice %v, local_ids twice %v, recv seqs reused %v, send seqs reused %v",
			who, pl.dupServer, pl.dupLocal, pl.dupSeq, pl.dupSendSeq)
	}
}

// checkLiveAgainstInbox: every frame pushed with a seq is stored with it,
// and no message was pushed twice.
func checkLiveAgainstInbox(ctx context.Context, t *testing.T, who string, u *account, frames []wire.Msg) {
	t.Helper()
	pl := pullAll(ctx, t, u)
	checkPulled(t, who, pl)
	seen := map[string]bool{}
	for _, f := range frames {
		if f.Seq == 0 {
			continue
		}
		if seen[f.ServerID] {
			t.Errorf("%s: %s (%s) pushed twice", who, f.ServerID, f.MsgType)
		}
		seen[f.ServerID] = true
		if m, ok := pl.recv[f.ServerID]; !ok || m.Seq != f.Seq {
			t.Errorf("%s: %s pushed with seq %d; inbox has %+v", who, f.ServerID, f.Seq, m)
		}
	}
}

// checkLiveFrames: across a msgserver takeover a message may be pushed
// again (a redelivered batch is replayed from its stored copies), always
// with the seq it is stored with; no seq names two messages.
func checkLiveFrames(t *testing.T, who string, live []frame, pl pulled) {
	t.Helper()
	seqOf, idOf := map[string]int64{}, map[int64]string{}
	replays := 0
	for _, f := range live {
		if f.seq == 0 {
			continue
		}
		if s, ok := seqOf[f.serverID]; ok {
			replays++
			if s != f.seq {
				t.Errorf("%s: %s pushed with seq %d and %d", who, f.serverID, s, f.seq)
			}
			continue
		}
		if other, ok := idOf[f.seq]; ok {
			t.Errorf("%s: seq %d pushed for %s and %s", who, f.seq, other, f.serverID)
		}
		seqOf[f.serverID], idOf[f.seq] = f.seq, f.serverID
		if m, ok := pl.recv[f.serverID]; !ok || m.Seq != f.seq {
			t.Errorf("%s: %s pushed with seq %d; inbox has %+v", who, f.serverID, f.seq, m)
		}
	}
	if replays > 0 {
		t.Logf("%s: %d pushes replayed after the takeover (same seqs)", who, replays)
	}
}

// waitInboxes pulls every user's inbox until it holds every expected
// server_id received and every own one sent (the surviving msgserver catches
// up on the partitions it took).
func waitInboxes(ctx context.Context, t *testing.T, users []*account, expected, own []map[string]bool) []pulled {
	t.Helper()
	pulls := make([]pulled, len(users))
	deadline := time.Now().Add(waitDeploy)
	for {
		missing := 0
		for i, u := range users {
			pulls[i] = pullAll(ctx, t, u)
			for id := range expected[i] {
				if _, ok := pulls[i].recv[id]; !ok {
					missing++
				}
			}
			for id := range own[i] {
				if _, ok := pulls[i].own[id]; !ok {
					missing++
				}
			}
		}
		if missing == 0 {
			return pulls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ACKed deliveries still not pullable after %v", missing, waitDeploy)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streamPaced is recorder.stream at most one frame per every: a steady
// stream the consumers keep up with.
func streamPaced(stop <-chan struct{}, c *client.Conn, r *recorder, users []*account, me int, gid string, groupEvery int, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-tick.C:
		case <-stop:
			return
		case <-c.Done():
			return
		}
		select {
		case r.window <- struct{}{}:
		case <-stop:
			return
		case <-c.Done():
			return
		}
		m := &wire.Msg{SendID: users[me].ID, LocalID: fmt.Sprintf("s%d-%d", me, i), MsgType: wire.MsgTypeSingleMsg,
			ContentType: wire.ContentText, Content: []byte(fmt.Sprintf("stream %d of %d", i, me)), CreateTime: time.Now().UnixMilli()}
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
