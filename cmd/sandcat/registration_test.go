package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	mas "maunium.net/go/mautrix/appservice"

	"github.com/sandcat-im/sandcat/im/config"
)

type regRun struct {
	code           int
	stdout, stderr string
}

func runRegistration(args ...string) regRun {
	var out, errb bytes.Buffer
	code := writeRegistration(args, &out, &errb)
	return regRun{code, out.String(), errb.String()}
}

// loadBoth parses a written registration the way mautrix-based tools do
// (yaml.v3) and the written config section the way Sandcat does.
func loadBoth(t *testing.T, file string, stdout string) (*mas.Registration, *config.Appservice) {
	t.Helper()
	reg, err := mas.LoadRegistration(file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	cfg, err := config.Parse([]byte(stdout), nil)
	if err != nil {
		t.Fatalf("stdout is not a valid config: %v\n%s", err, stdout)
	}
	if cfg.Appservice == nil {
		t.Fatalf("stdout has no appservice section:\n%s", stdout)
	}
	return reg, cfg.Appservice
}

func TestRegistrationWritesFileAndConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "registration.yaml")
	r := runRegistration("registration", "-o", file, "-url", "http://10.0.0.5:29400", "-server-name", "chat.example.org",
		"-homeserver-url", "http://10.0.0.2:8008")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	reg, as := loadBoth(t, file, r.stdout)

	for _, c := range []struct{ name, got, want string }{
		{"id", reg.ID, "sandcat"},
		{"url", reg.URL, "http://10.0.0.5:29400"},
		{"sender_localpart", reg.SenderLocalpart, "sandcatbot"},
		{"config id", as.ID, reg.ID},
		{"config as_token", as.ASToken, reg.AppToken},
		{"config hs_token", as.HSToken, reg.ServerToken},
		{"config sender_localpart", as.SenderLocalpart, reg.SenderLocalpart},
		{"config homeserver_name", as.HomeserverName, "chat.example.org"},
		{"config homeserver_url", as.HomeserverURL, "http://10.0.0.2:8008"},
		{"config listen", as.Listen, "10.0.0.5:29400"},
		{"config user_prefix", as.UserPrefix, "sandcat_"},
		{"config alias_prefix", as.AliasPrefix, "sandcat_"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	tokenRe := regexp.MustCompile(`^[A-Za-z0-9]{64}$`)
	if !tokenRe.MatchString(reg.AppToken) || !tokenRe.MatchString(reg.ServerToken) || reg.AppToken == reg.ServerToken {
		t.Errorf("tokens %q / %q: want two different 64-character tokens", reg.AppToken, reg.ServerToken)
	}
	if reg.RateLimited == nil || *reg.RateLimited {
		t.Errorf("rate_limited = %v, want an explicit false", reg.RateLimited)
	}
	if !reg.EphemeralEvents {
		t.Error("receive_ephemeral is not true")
	}
	if len(reg.Namespaces.UserIDs) == 0 || len(reg.Namespaces.RoomAliases) != 1 {
		t.Fatalf("namespaces %+v", reg.Namespaces)
	}
	for _, ns := range append(append(mas.NamespaceList{}, reg.Namespaces.UserIDs...), reg.Namespaces.RoomAliases...) {
		if !ns.Exclusive {
			t.Errorf("namespace %q is not exclusive", ns.Regex)
		}
	}
	users := regexp.MustCompile("^(?:" + reg.Namespaces.UserIDs[0].Regex + ")$")
	aliases := regexp.MustCompile("^(?:" + reg.Namespaces.RoomAliases[0].Regex + ")$")
	for _, c := range []struct {
		re   *regexp.Regexp
		s    string
		want bool
	}{
		{users, "@sandcat_V1StGXR8_Z5jdHi6B-myT:chat.example.org", true},
		{users, "@sandcat_x:chatXexample.org", false}, // the dots of the server name are escaped
		{users, "@alice:chat.example.org", false},
		{users, "@sandcat_x:other.org", false},
		{aliases, "#sandcat_group1:chat.example.org", true},
		{aliases, "#sandcat_group1:chat-example.org", false},
		{aliases, "#general:chat.example.org", false},
	} {
		if got := c.re.MatchString(c.s); got != c.want {
			t.Errorf("%s matches %q: %v, want %v", c.re, c.s, got, c.want)
		}
	}
	botNS := false
	for _, ns := range reg.Namespaces.UserIDs {
		if regexp.MustCompile("^(?:" + ns.Regex + ")$").MatchString("@sandcatbot:chat.example.org") {
			botNS = true
		}
	}
	if !botNS {
		t.Error("the bridge bot is in no user namespace")
	}
	raw, _ := os.ReadFile(file)
	if !strings.Contains(string(raw), "rooms: []") {
		t.Errorf("file lacks an explicit empty rooms namespace:\n%s", raw)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v, want 0600", st.Mode(), err)
	}
}

func TestRegistrationNeverOverwritesWithoutForce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "registration.yaml")
	first := runRegistration("registration", "-o", file, "-server-name", "example.org")
	if first.code != 0 {
		t.Fatalf("exit %d: %s", first.code, first.stderr)
	}
	before, _ := os.ReadFile(file)
	again := runRegistration("registration", "-o", file, "-server-name", "example.org")
	if again.code == 0 || !strings.Contains(again.stderr, "-force") || again.stdout != "" {
		t.Fatalf("second run without -force: exit %d, stdout %q, stderr %q", again.code, again.stdout, again.stderr)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("the existing file changed")
	}
	forced := runRegistration("registration", "-o", file, "-server-name", "example.org", "-force")
	if forced.code != 0 {
		t.Fatalf("-force: exit %d: %s", forced.code, forced.stderr)
	}
	r1, _ := mas.LoadRegistration(file)
	if bytes.Equal(before, mustRead(t, file)) {
		t.Fatal("-force did not rewrite the file")
	}
	// Tokens are fresh on every run.
	other := filepath.Join(dir, "other.yaml")
	r := runRegistration("registration", "-o", other, "-server-name", "example.org", "-url", "http://sandcat-bridge:29400")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	r2, as := loadBoth(t, other, r.stdout)
	if as.Listen != ":29400" { // a host name as the homeserver sees it: listen on every interface
		t.Errorf("listen %q, want :29400", as.Listen)
	}
	if r1.AppToken == r2.AppToken || r1.ServerToken == r2.ServerToken {
		t.Fatal("two runs produced the same tokens")
	}
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRegistrationBadArguments(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
	}{
		{"no subcommand", nil},
		{"unknown subcommand", []string{"register"}},
		{"unknown flag", []string{"registration", "-nope"}},
		{"stray argument", []string{"registration", "extra"}},
		{"bad url", []string{"registration", "-server-name", "example.org", "-url", "29400"}},
		{"bad server name", []string{"registration", "-server-name", "a b"}},
		{"no server name", []string{"registration", "-url", "http://127.0.0.1:29400"}},
		{"upper-case prefix", []string{"registration", "-server-name", "example.org", "-user-prefix", "Sandcat_"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			args := tc.args
			if len(args) > 0 && args[0] == "registration" {
				args = append([]string{"registration", "-o", file}, args[1:]...)
			}
			r := runRegistration(args...)
			if r.code != 2 || r.stderr == "" {
				t.Fatalf("exit %d, stderr %q; want 2 and a message", r.code, r.stderr)
			}
			if _, err := os.Stat(file); err == nil {
				t.Fatal("a file was written")
			}
		})
	}
}

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	for _, tc := range []struct {
		args []string
		want int
	}{{[]string{"probe", ok.URL}, 0}, {[]string{"probe", down.URL}, 1}, {[]string{"probe", "http://127.0.0.1:1/"}, 1}, {[]string{"probe"}, 2}} {
		if got := run(tc.args, io.Discard, io.Discard); got != tc.want {
			t.Errorf("run(%v) = %d, want %d", tc.args, got, tc.want)
		}
	}
}
