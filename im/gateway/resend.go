package gateway

import (
	"context"
	"sync"
	"time"
)

// recentSends remembers the server fields of the messages this gateway put
// into the pipeline lately, by (sender, local_id): local_id is the client's
// idempotency key, so a frame sent again (the client retrying after a lost
// ACK, or after a reconnect) is answered with the first send's ACK and never
// stored twice. Two generations of maps bound it: an entry lives between
// span and 2×span, or less when a generation fills up (max entries, about
// 150 bytes each). A frame that reaches another gateway is not recognised:
// the window covers retries on one gateway.
type recentSends struct {
	mu      sync.Mutex
	cur     map[string]sentMsg
	old     map[string]sentMsg
	rotated time.Time
	span    time.Duration
	max     int
	now     func() time.Time
}

// sentMsg is what the ACK of a send adds to the frame; done is false while
// the send is in flight. A failed send is removed.
type sentMsg struct {
	serverID          string
	sendTime, sendSeq int64
	done              bool
}

func newRecentSends(span time.Duration, max int) *recentSends {
	return &recentSends{cur: make(map[string]sentMsg), old: map[string]sentMsg{}, span: span, max: max,
		now: time.Now, rotated: time.Now()}
}

func sendKey(user, localID string) string { return user + "\x00" + localID }

// begin claims key for a send; false when key was sent (or is being sent)
// already.
func (r *recentSends) begin(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.rotated) >= r.span || len(r.cur) >= r.max {
		r.old, r.cur, r.rotated = r.cur, make(map[string]sentMsg, len(r.cur)), now
	}
	if _, ok := r.lookup(key); ok {
		return false
	}
	r.cur[key] = sentMsg{}
	return true
}

func (r *recentSends) lookup(key string) (sentMsg, bool) {
	if s, ok := r.cur[key]; ok {
		return s, true
	}
	s, ok := r.old[key]
	return s, ok
}

// end records how the send begun for key went: ok with its server fields,
// or failed (key is forgotten, so that a later retry is sent).
func (r *recentSends) end(key string, ok bool, serverID string, sendTime, sendSeq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok {
		delete(r.cur, key)
		delete(r.old, key)
		return
	}
	s := sentMsg{serverID: serverID, sendTime: sendTime, sendSeq: sendSeq, done: true}
	if _, inOld := r.old[key]; inOld {
		r.old[key] = s
		return
	}
	r.cur[key] = s
}

// wait returns the first send's server fields once it succeeded; ok is
// false when it failed or ctx ended first. Retries of a send in flight are
// rare: waiting polls.
func (r *recentSends) wait(ctx context.Context, key string) (sentMsg, bool) {
	for {
		r.mu.Lock()
		s, found := r.lookup(key)
		r.mu.Unlock()
		switch {
		case !found:
			return sentMsg{}, false
		case s.done:
			return s, true
		}
		select {
		case <-ctx.Done():
			return sentMsg{}, false
		case <-time.After(10 * time.Millisecond):
		}
	}
}
