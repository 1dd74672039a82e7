package main

// Helpers of TestProductionBridge: the appservice registration written by
// the real binary, the appservice process of the deployment, a Matrix bot on
// mautrix-go, and ordered waits on a native client's frames.

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
)

// bridgeRegistration runs `sandcat appservice registration` as an operator
// would: it writes registration.yaml (for the homeserver) into a temporary
// directory and returns its path and the binary's stdout (the appservice:
// section of config.yml). hsURL is what the section names as the homeserver.
func bridgeRegistration(t *testing.T, asURL, serverName, hsURL string) (regPath, section string) {
	t.Helper()
	regPath = filepath.Join(t.TempDir(), "registration.yaml")
	cmd := exec.Command(sandcatBinary(t), "appservice", "registration",
		"-o", regPath, "-url", asURL, "-server-name", serverName, "-homeserver-url", hsURL)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sandcat appservice registration: %v\n%s", err, errb.String())
	}
	if _, err := os.Stat(regPath); err != nil {
		t.Fatalf("sandcat appservice registration wrote no file: %v", err)
	}
	if !strings.Contains(out.String(), "\nappservice:") {
		t.Fatalf("sandcat appservice registration printed no appservice section:\n%s", out.String())
	}
	return regPath, out.String()
}

// newBridgeNode writes the config of an appservice process: the shared
// backend sections plus the section the registration printed; the
// homeserver URL (known once the homeserver runs) comes from the
// environment, like the secrets.
func (d *deployment) newBridgeNode(name, section, hsURL string) *node {
	d.t.Helper()
	n := d.newNode(name, "appservice")
	f, err := os.OpenFile(n.in.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := f.WriteString(section); err != nil {
		d.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		d.t.Fatal(err)
	}
	// Debug: the bridge logs each message it bridges (bridgedBy).
	n.in.env = append(n.in.env, "SANDCAT_APPSERVICE_HOMESERVER_URL="+hsURL, "SANDCAT_LOG_LEVEL=debug")
	return n
}

// bridgedLine is the bridge's debug line of a message bridged either way.
var bridgedLine = regexp.MustCompile(`msg="message bridged to (Matrix|Sandcat)" .*?(?:server_id|event_id)=(\S+)`)

// bridgedBy is what a process bridged: "Matrix <server_id>" and
// "Sandcat <event_id>".
func bridgedBy(p *proc) map[string]bool {
	out := map[string]bool{}
	for _, m := range bridgedLine.FindAllStringSubmatch(p.log.all(), -1) {
		out[m[1]+" "+m[2]] = true
	}
	return out
}

// Log lines of the appservice role (text handler).
var (
	pingedLine    = regexp.MustCompile(`msg="homeserver pinged"`)
	bridgeFailure = regexp.MustCompile(`msg="(the bridge and the homeserver cannot talk[^"]*|the homeserver has no appservice ping[^"]*)".*`)
)

// startBridgeProc spawns the appservice process and waits until it serves:
// ready on its listener (base), the homeserver answered its ping, and its
// consumer group holds every partition of the bus. It returns how long
// that took.
func (d *deployment) startBridgeProc(n *node, base string) time.Duration {
	d.t.Helper()
	began := time.Now()
	n.p = n.in.spawn()
	d.waitUntil(n.p, n.name+": ready, the homeserver pinged and every partition assigned", func() error {
		if err := httpOK(base + "/ready"); err != nil {
			return err
		}
		// The role retries the homeserver with backoff: a failure is
		// reported if the wait ends without a ping.
		logs := n.p.log.all()
		if !pingedLine.MatchString(logs) {
			fails := bridgeFailure.FindAllString(logs, -1)
			if len(fails) > 0 {
				return fmt.Errorf("no ping yet; %d failure(s), the last: %s", len(fails), fails[len(fails)-1])
			}
			return fmt.Errorf("no ping yet")
		}
		if a := lastAssignment(n.p); len(a.partitions) != d.partitions {
			return fmt.Errorf("assignment %+v", a)
		}
		return nil
	})
	return time.Since(began)
}

// mxBot is a Matrix user on mautrix-go (testsvc.MatrixBot) that records,
// in order, the timeline events of the rooms it is in; cli is its client.
type mxBot struct {
	*testsvc.MatrixBot
	cli *mautrix.Client
	t   *testing.T
}

func newMXBot(t *testing.T, syn *testsvc.Synapse, localpart string) *mxBot {
	t.Helper()
	password := "pw-" + localpart + "-secret"
	syn.RegisterUser(t, localpart, password)
	mb := testsvc.NewMatrixBot(t, syn.URL, localpart, password, waitEvent)
	return &mxBot{MatrixBot: mb, cli: mb.Cli, t: t}
}

// messages returns the m.room.message events of others in room, in
// timeline order, once at least n arrived (bounded wait).
func (b *mxBot) messages(room id.RoomID, n int) []*event.Event {
	return b.Messages(room, n)
}

// sendText sends a text into room and returns its event id.
func (b *mxBot) sendText(ctx context.Context, room id.RoomID, text string) id.EventID {
	b.t.Helper()
	r, err := b.cli.SendText(ctx, room, text)
	if err != nil {
		b.t.Fatalf("matrix bot sends %q: %v", text, err)
	}
	return r.EventID
}

func bodies(evts []*event.Event) []string {
	out := make([]string, len(evts))
	for i, e := range evts {
		out[i] = fmt.Sprintf("%s: %q", e.Sender, e.Content.AsMessage().Body)
	}
	return out
}

// waitN returns the frames that match, in arrival order, once at least n
// arrived (bounded wait).
func (p *peer) waitN(t *testing.T, what string, n int, match func(*wire.Msg) bool) []wire.Msg {
	t.Helper()
	var out []wire.Msg
	p.waitFor(t, fmt.Sprintf("%d %s", n, what), func() bool {
		out = out[:0]
		for i := range p.got {
			if match(&p.got[i]) {
				out = append(out, p.got[i])
			}
		}
		return len(out) >= n
	})
	return out
}

// texts lists the frames' contents, for failure messages.
func texts(ms []wire.Msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%s seq %d: %q", m.ServerID, m.Seq, m.Content)
	}
	return out
}

// testPNG is a small PNG of w×h with one pixel of colour c.
func testPNG(t *testing.T, w, h int, c color.RGBA) []byte { return testsvc.PNG(t, w, h, c) }
