// Package cleanuptest checks implementations of cleanup.Referenced (the
// SQLite and PostgreSQL stores) and the cleaner end to end over a real
// blob.Store: Referenced checks ReferencedFiles against rows stored through
// the storage interfaces; Cleaner runs a pass and checks what was deleted.
package cleanuptest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup"
)

// Fixture is a database and its Referenced.
type Fixture struct {
	Refs    cleanup.Referenced
	Users   storage.Users
	Groups  storage.Groups
	History storage.History
	// Inbox is nil when Refs does not cover an inbox (PostgreSQL).
	Inbox storage.Inbox
}

// Object is a name the suite stores rows about (or not).
type Object struct {
	Bucket     blob.Bucket
	Name       string
	Referenced bool
	Why        string // what refers to it, or why it is not referenced
}

// Seed stores rows that refer to fresh object names and returns those names
// with, for contrast, names that nothing refers to.
func Seed(t *testing.T, f Fixture) []Object {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UnixMilli()
	var objs []Object
	add := func(b blob.Bucket, name string, ref bool, why string) string {
		objs = append(objs, Object{Bucket: b, Name: name, Referenced: ref, Why: why})
		return name
	}

	userAvatar := add(blob.Avatars, ids.New()+".png", true, "users.avatar")
	uid := ids.New()
	if err := f.Users.CreateUser(ctx, &storage.User{ID: uid, Account: uid, Name: "owner", Avatar: userAvatar, Gender: "f"}, 100); err != nil {
		t.Fatalf("cleanuptest: create user: %v", err)
	}
	list := []string{
		add(blob.Avatars, ids.New()+".png", true, "first of a group's avatar list"),
		add(blob.Avatars, ids.New()+".jpg", true, "middle of a group's avatar list"),
		add(blob.Avatars, ids.New(), true, "last of a group's avatar list"),
	}
	if _, _, err := f.Groups.CreateGroup(ctx, wire.GroupInfo{ID: ids.New(), Owner: uid, Name: "g",
		Avatar: strings.Join(list, ",")}, nil); err != nil {
		t.Fatalf("cleanuptest: create group: %v", err)
	}
	single := add(blob.Avatars, ids.New()+".webp", true, "a group's single avatar")
	spaced := add(blob.Avatars, ids.New()+".png", true, "a group's avatar list with spaces")
	for _, avatar := range []string{single, "avatar1.png, " + spaced + " ,avatar2.png"} {
		if _, _, err := f.Groups.CreateGroup(ctx, wire.GroupInfo{ID: ids.New(), Owner: uid, Name: "g", Avatar: avatar}, nil); err != nil {
			t.Fatalf("cleanuptest: create group: %v", err)
		}
	}

	msg := func(contentType int32, content []byte) wire.Msg {
		return wire.Msg{SendID: uid, ReceiverID: ids.New(), LocalID: ids.New(), ServerID: ids.New(),
			CreateTime: now, SendTime: now, MsgType: wire.MsgTypeSingleMsg, ContentType: contentType,
			Content: content, Seq: 1, SendSeq: 1, Avatar: "avatar1.png", Nickname: "owner"}
	}
	file := add(blob.Files, ids.New()+".pdf", true, "history file message")
	image := add(blob.Files, ids.New()+".jpg", true, "history image message")
	video := add(blob.Files, ids.New()+".mp4", true, "history video message, key alone")
	// Duration byte '|' (124 s) is the separator of the other formats.
	audio := add(blob.Files, ids.New()+".webm", true, "history audio message")
	mentioned := add(blob.Files, ids.New()+".txt", false, "only mentioned in a text message")
	history := []wire.Msg{
		msg(wire.ContentFile, []byte(file+"||report.pdf||1234||pdf")),
		msg(wire.ContentImage, []byte(image+"||photo.jpg||99||jpg")),
		msg(wire.ContentVideo, []byte(video)),
		msg(wire.ContentAudio, wire.EncodeAudio('|', audio)),
		msg(wire.ContentText, []byte("see "+mentioned+"||x")),
		msg(wire.ContentFile, []byte("||")),    // malformed: no key
		msg(wire.ContentAudio, []byte{}),       // malformed: empty
		msg(wire.ContentImage, []byte("\xff")), // not a name
	}
	if err := f.History.Append(ctx, history); err != nil {
		t.Fatalf("cleanuptest: history: %v", err)
	}

	if f.Inbox != nil {
		inboxFile := add(blob.Files, ids.New()+".mp4", true, "inbox video message")
		inboxAudio := add(blob.Files, ids.New()+".webm", true, "inbox audio message")
		sender := add(blob.Avatars, ids.New()+".png", true, "inbox entry's sender avatar")
		m1 := msg(wire.ContentVideo, []byte(inboxFile+"||clip.mp4||5||mp4"))
		m2 := msg(wire.ContentText, []byte("hello"))
		m2.Avatar = sender
		m3 := msg(wire.ContentAudio, wire.EncodeAudio(3, inboxAudio))
		m3.MsgType = wire.MsgTypeGroupMsg
		var entries []storage.InboxEntry
		for _, m := range []wire.Msg{m1, m2, m3} {
			entries = append(entries, storage.InboxSingle(m)...)
		}
		if err := f.Inbox.Save(ctx, entries); err != nil {
			t.Fatalf("cleanuptest: inbox: %v", err)
		}
	}

	add(blob.Files, ids.New()+".zip", false, "unreferenced file")
	add(blob.Avatars, ids.New()+".png", false, "unreferenced avatar")
	add(blob.Files, file+"x", false, "unreferenced name extending a referenced one")
	add(blob.Files, strings.TrimSuffix(file, ".pdf"), false, "unreferenced prefix of a referenced name")
	add(blob.Avatars, strings.TrimSuffix(list[1], ".jpg"), false, "unreferenced prefix of a listed avatar")
	add(blob.Files, strings.TrimSuffix(image, ".jpg")+".png", false, "unreferenced name sharing a referenced key's nanoid")
	return objs
}

// Referenced checks f.Refs.ReferencedFiles over seeded rows.
func Referenced(t *testing.T, f Fixture) {
	ctx := context.Background()
	objs := Seed(t, f)
	names := make([]string, 0, len(objs)+600)
	for _, o := range objs {
		names = append(names, o.Name)
	}
	// Enough fresh names to need several queries where a store chunks them.
	for range 600 {
		names = append(names, ids.New()+".bin")
	}
	got, err := f.Refs.ReferencedFiles(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if got[o.Name] != o.Referenced {
			t.Errorf("%s (%s): referenced = %v, want %v", o.Name, o.Why, got[o.Name], o.Referenced)
		}
	}
	for _, n := range names[len(objs):] {
		if got[n] {
			t.Errorf("fresh name %s reported referenced", n)
		}
	}
	// One name alone, and none at all.
	for _, o := range objs {
		got, err := f.Refs.ReferencedFiles(ctx, []string{o.Name})
		if err != nil {
			t.Fatal(err)
		}
		if got[o.Name] != o.Referenced {
			t.Errorf("alone: %s (%s): referenced = %v, want %v", o.Name, o.Why, got[o.Name], o.Referenced)
		}
	}
	if got, err := f.Refs.ReferencedFiles(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no names: %v, %v", got, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Refs.ReferencedFiles(cancelled, names); err == nil {
		t.Fatal("ReferencedFiles with a cancelled context succeeded")
	}
}

// Cleaner seeds f, stores every seeded object in store as old, and a few
// young ones, runs one pass, and checks that exactly the old unreferenced
// objects are gone; the default avatars stay.
func Cleaner(t *testing.T, store blob.Store, f Fixture) {
	ctx := context.Background()
	if err := blob.InstallDefaults(ctx, store); err != nil {
		t.Fatal(err)
	}
	objs := Seed(t, f)
	put := func(o Object) {
		t.Helper()
		if err := store.Put(ctx, o.Bucket, o.Name, "application/x-test", strings.NewReader(o.Why), int64(len(o.Why))); err != nil {
			t.Fatalf("put %s: %v", o.Name, err)
		}
	}
	for _, o := range objs {
		put(o)
	}
	// Stores stamp objects with the wall clock (MinIO with milliseconds):
	// objects before cutoff are old, those after it young.
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	young := []Object{
		{Bucket: blob.Files, Name: ids.New() + ".txt", Why: "young unreferenced file"},
		{Bucket: blob.Avatars, Name: ids.New() + ".png", Why: "young unreferenced avatar"},
	}
	for _, o := range young {
		put(o)
	}
	mod := modTimes(t, store)
	for _, o := range objs {
		if !mod[o.Bucket][o.Name].Before(cutoff) {
			t.Fatalf("precondition: %s stamped %v, not before %v", o.Name, mod[o.Bucket][o.Name], cutoff)
		}
	}
	for _, o := range young {
		if mod[o.Bucket][o.Name].Before(cutoff) {
			t.Fatalf("precondition: %s stamped %v, before %v", o.Name, mod[o.Bucket][o.Name], cutoff)
		}
	}

	const retention = 30 * 24 * time.Hour
	c, err := cleanup.New(cleanup.Options{
		Store: store, Refs: f.Refs, Retention: retention,
		BatchSize: 3, // several batches
		Now:       func() time.Time { return cutoff.Add(retention) },
	})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := c.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := modTimes(t, store)
	want := 0
	for _, o := range objs {
		_, present := after[o.Bucket][o.Name]
		if !o.Referenced {
			want++
		}
		if present != o.Referenced {
			t.Errorf("%s (%s): present = %v after cleanup, want %v", o.Name, o.Why, present, o.Referenced)
		}
	}
	for _, o := range young {
		if _, ok := after[o.Bucket][o.Name]; !ok {
			t.Errorf("%s (%s) deleted", o.Name, o.Why)
		}
	}
	for _, n := range blob.DefaultAvatarNames() {
		if _, ok := after[blob.Avatars][n]; !ok {
			t.Errorf("default avatar %s deleted", n)
		}
	}
	if removed != want {
		t.Errorf("Once removed %d, want %d", removed, want)
	}
	if n, err := c.Once(ctx); err != nil || n != 0 {
		t.Errorf("second pass removed %d, %v", n, err)
	}
}

func modTimes(t *testing.T, store blob.Store) map[blob.Bucket]map[string]time.Time {
	t.Helper()
	out := map[blob.Bucket]map[string]time.Time{}
	for _, b := range blob.Buckets() {
		out[b] = map[string]time.Time{}
		if err := store.List(context.Background(), b, func(i blob.Info) error {
			out[b][i.Name] = i.ModTime
			return nil
		}); err != nil {
			t.Fatal(fmt.Errorf("list %s: %w", b, err))
		}
	}
	return out
}
