package matrix

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		management bool
		ok         bool
		cmd        string
		args       []string
	}{
		{"management: bare word", "help", true, true, "help", nil},
		{"management: upper case and spaces", "  PING  ", true, true, "ping", nil},
		{"management: arguments", "bridge  g1", true, true, "bridge", []string{"g1"}},
		{"management: prefix allowed", "!sandcat bridge g1", true, true, "bridge", []string{"g1"}},
		{"management: unknown word is a command", "hello there", true, true, "hello", []string{"there"}},
		{"management: empty", "   ", true, false, "", nil},
		{"room: no prefix", "help", false, false, "", nil},
		{"room: prefix", "!sandcat help", false, true, "help", nil},
		{"room: prefix, case and tabs", "!SandCat\tunbridge", false, true, "unbridge", nil},
		{"room: prefix alone is help", "!sandcat", false, true, "help", nil},
		{"room: prefix glued to a word", "!sandcathelp", false, false, "", nil},
		{"room: prefix not first", "say !sandcat help", false, false, "", nil},
		{"room: arguments", "!sandcat bridge abc def", false, true, "bridge", []string{"abc", "def"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCommand(tt.body, tt.management)
			if ok != tt.ok || got.name != tt.cmd || !slices.Equal(got.args, tt.args) {
				t.Fatalf("parseCommand(%q, %v) = %+v, %v; want %q %q, %v", tt.body, tt.management, got, ok, tt.cmd, tt.args, tt.ok)
			}
		})
	}
}

func TestRoomArg(t *testing.T) {
	tests := []struct {
		room string
		ok   bool
	}{
		{"!abc:example.org", true},
		{"!abcdefOpaqueV12", true}, // room versions 12+: no server part
		{"#room:example.org", true},
		{"#room", false},
		{"#:example.org", false},
		{"#room:", false},
		{"room:example.org", false},
		{"", false},
		{"!", false},
		{"!a b:example.org", false},
		{"!abc:example.org/../x", false},
	}
	for _, tt := range tests {
		if got := roomArg(tt.room); got != tt.ok {
			t.Errorf("roomArg(%q) = %v, want %v", tt.room, got, tt.ok)
		}
	}
}

func TestHelpText(t *testing.T) {
	for _, management := range []bool{true, false} {
		h := helpText(management)
		lines := strings.Split(h, "\n")
		if len(lines) != 5 {
			t.Fatalf("help (management %v) has %d lines, want an intro and one per command:\n%s", management, len(lines), h)
		}
		for i, cmd := range []string{"help", "ping", "bridge", "unbridge"} {
			if !strings.HasPrefix(lines[i+1], cmd+" ") {
				t.Errorf("help line %d = %q, want the %s command", i+1, lines[i+1], cmd)
			}
		}
	}
}

// stateOf builds a room state map from a create event content and a
// power levels content (nil: none).
func stateOf(t *testing.T, creator id.UserID, version string, pl map[string]any) map[event.Type]map[string]*event.Event {
	t.Helper()
	parse := func(typ event.Type, sender id.UserID, content any) *event.Event {
		raw, err := json.Marshal(content)
		if err != nil {
			t.Fatal(err)
		}
		typ.Class = event.StateEventType
		e := &event.Event{Type: typ, Sender: sender, StateKey: new(""), Content: event.Content{VeryRaw: raw}}
		if err := e.Content.ParseRaw(typ); err != nil {
			t.Fatal(err)
		}
		return e
	}
	s := map[event.Type]map[string]*event.Event{
		event.StateCreate: {"": parse(event.StateCreate, creator, map[string]any{"room_version": version})},
	}
	if pl != nil {
		s[event.StatePowerLevels] = map[string]*event.Event{"": parse(event.StatePowerLevels, creator, pl)}
	}
	return s
}

func TestMayChangeState(t *testing.T) {
	const creator, mod, member = id.UserID("@c:hs"), id.UserID("@m:hs"), id.UserID("@u:hs")
	defaults := map[string]any{"users": map[string]int{string(creator): 100, string(mod): 50}}
	tests := []struct {
		name    string
		version string
		pl      map[string]any
		user    id.UserID
		want    bool
	}{
		{"creator (v10)", "10", defaults, creator, true},
		{"moderator at state_default 50", "10", defaults, mod, true},
		{"member", "10", defaults, member, false},
		{"member with state_default 0", "10", map[string]any{"state_default": 0}, member, true},
		{"moderator below a raised state_default", "10", map[string]any{"users": map[string]int{string(mod): 50}, "state_default": 75}, mod, false},
		{"users_default high enough", "10", map[string]any{"users_default": 50}, member, true},
		{"v12 creator not listed in users", "12", map[string]any{"users": map[string]int{string(mod): 50}}, creator, true},
		{"no power levels: creator", "10", nil, creator, true},
		{"no power levels: member", "10", nil, member, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mayChangeState(stateOf(t, creator, tt.version, tt.pl), tt.user); got != tt.want {
				t.Fatalf("mayChangeState = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBridgeStateKey(t *testing.T) {
	if got := BridgeStateKey("g1"); got != "sandcat://sandcat/g1" {
		t.Fatalf("BridgeStateKey = %q", got)
	}
}
