package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SynapseRootName is the folder, under BinDir, of the Debian sid chroot
// holding matrix-synapse; cmd/testservers/synapse.sh builds it and writes
// SynapseRootName+".stamp" when it is complete.
const SynapseRootName = "synapse-root"

// synapseDataParent is where, inside the chroot, each Synapse gets its data
// directory: "<test process pid>.<random>", removed at cleanup (and by a
// later run when that process is gone).
const synapseDataParent = "var/lib/sandcat-test"

// SynapseOptions configures RunSynapse.
type SynapseOptions struct {
	// AppserviceRegistration is the path, on the host, of an appservice
	// registration.yaml. It is copied into the homeserver's data directory
	// (see Synapse.Registration) and listed in app_service_config_files.
	// Empty: no appservice.
	AppserviceRegistration string
}

// Synapse is a running Synapse homeserver (Debian sid's matrix-synapse in
// a chroot, SQLite database, client API only, no federation) with open
// registration and rate limits raised out of the way of tests.
type Synapse struct {
	*Server
	// URL is the client-server API base, http://127.0.0.1:PORT. It stays
	// the same across Stop and Start.
	URL string
	// ServerName is the homeserver's name: user IDs are @local:ServerName.
	ServerName string
	// Registration is the host path of the copy of the appservice
	// registration that Synapse reads at each start ("" without one).
	// Synapse loads registrations only at startup: edit this file, then
	// Restart.
	Registration string
	// DataDir is the host path of the homeserver's data directory (config,
	// database, media, signing key); inside the chroot it is DataDirInRoot.
	DataDir, DataDirInRoot string

	sharedSecret string
}

// SynapseRoot returns the path of the Synapse chroot and fails the test,
// with the command that builds it, when the chroot is missing or
// incomplete.
func SynapseRoot(t testing.TB) string {
	t.Helper()
	root, err := synapseRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// synapseRoot is SynapseRoot without a test: the error names the command
// that builds the chroot.
func synapseRoot() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, SynapseRootName)
	_, errStamp := os.Stat(root + ".stamp")
	_, errPy := os.Stat(filepath.Join(root, "usr", "bin", "python3"))
	if err := errors.Join(errStamp, errPy); err != nil {
		script := "cmd/testservers/synapse.sh"
		if r := repoRoot(); r != "" {
			script = filepath.Join(r, script)
		}
		return "", fmt.Errorf("testsvc: the Synapse chroot is missing or incomplete at %s (%v).\nBuild it (as root, about two minutes and 550 MB, once per machine) with:\n\t%s %q",
			root, err, script, dir)
	}
	return root, nil
}

// RunSynapse starts a Synapse with an empty SQLite database on a free
// loopback port and returns once /_matrix/client/versions answers;
// t.Cleanup stops it and removes its data directory. The test process must
// run as root (chroot).
func RunSynapse(t testing.TB, opts SynapseOptions) *Synapse {
	t.Helper()
	root := SynapseRoot(t)
	if os.Geteuid() != 0 {
		t.Fatalf("testsvc: RunSynapse needs root to chroot into %s (CI runs as root)", root)
	}
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		t.Fatalf("testsvc: RunSynapse: %v", err)
	}
	data, err := newSynapseData(root, t.Logf)
	if err != nil {
		t.Fatalf("testsvc: synapse: %v", err)
	}
	// Registered before the stop cleanup of the server, so it runs after it.
	t.Cleanup(func() {
		if err := os.RemoveAll(data); err != nil {
			t.Logf("testsvc: removing synapse data %s: %v", data, err)
		}
	})
	s, err := newSynapse(root, chroot, data, t.TempDir(), opts)
	if err != nil {
		t.Fatalf("testsvc: synapse: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && s.proc != nil {
			t.Logf("testsvc: synapse stderr tail (%s):\n%s", s.proc.stderrPath, tail(s.proc.stderrPath, tailLines))
		}
		if err := s.stop(syscall.SIGTERM); err != nil {
			t.Logf("testsvc: stopping synapse: %v", err)
		}
	})
	s.Start(t)
	return s
}

// StartSynapse is RunSynapse outside a test (the load tool uses it): it
// starts a Synapse with an empty SQLite database and returns once it
// answers. stop stops it (SIGTERM, then SIGKILL) and removes its data and
// output; call it exactly once. logf receives the few things worth noting
// (stale data removed, a failed stop); nil drops them. The process must run
// as root (chroot).
func StartSynapse(ctx context.Context, opts SynapseOptions, logf func(format string, args ...any)) (s *Synapse, stop func(), err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	root, err := synapseRoot()
	if err != nil {
		return nil, nil, err
	}
	if os.Geteuid() != 0 {
		return nil, nil, fmt.Errorf("testsvc: StartSynapse needs root to chroot into %s", root)
	}
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		return nil, nil, fmt.Errorf("testsvc: StartSynapse: %w", err)
	}
	data, err := newSynapseData(root, logf)
	if err != nil {
		return nil, nil, fmt.Errorf("testsvc: synapse: %w", err)
	}
	out, err := os.MkdirTemp("", "sandcat-synapse-")
	if err != nil {
		_ = os.RemoveAll(data)
		return nil, nil, fmt.Errorf("testsvc: synapse: %w", err)
	}
	cleanup := func() {
		for _, d := range []string{data, out} {
			if err := os.RemoveAll(d); err != nil {
				logf("testsvc: removing %s: %v", d, err)
			}
		}
	}
	s, err = newSynapse(root, chroot, data, out, opts)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("testsvc: synapse: %w", err)
	}
	if err := s.start(); err != nil {
		cleanup()
		return nil, nil, err
	}
	stop = func() {
		if err := s.stop(syscall.SIGTERM); err != nil {
			logf("testsvc: stopping synapse: %v", err)
		}
		cleanup()
	}
	return s, stop, nil
}

// Pid is the process id of the running homeserver (the chroot execs
// Python in place), 0 when it is not running.
func (s *Synapse) Pid() int {
	if s.proc == nil || s.proc.cmd == nil || s.proc.cmd.Process == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// newSynapseData makes a fresh data directory for one Synapse under the
// chroot, after removing those left by dead processes.
func newSynapseData(root string, logf func(format string, args ...any)) (string, error) {
	parent := filepath.Join(root, synapseDataParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	removeStaleData(parent, logf)
	data, err := os.MkdirTemp(parent, strconv.Itoa(os.Getpid())+".")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(data, 0o755); err != nil {
		_ = os.RemoveAll(data)
		return "", err
	}
	return data, nil
}

// newSynapse prepares (does not start) a Synapse on the data directory
// data (under root), with its output in dir.
func newSynapse(root, chroot, data, dir string, opts SynapseOptions) (*Synapse, error) {
	rel, err := relUnder(root, data)
	if err != nil {
		return nil, err
	}
	s := &Synapse{
		Server:        &Server{name: "synapse", bin: chroot, dir: dir},
		ServerName:    "localhost",
		DataDir:       data,
		DataDirInRoot: "/" + filepath.ToSlash(rel),
		sharedSecret:  rand.Text(),
	}
	if opts.AppserviceRegistration != "" {
		b, err := os.ReadFile(opts.AppserviceRegistration)
		if err != nil {
			return nil, fmt.Errorf("appservice registration: %w", err)
		}
		s.Registration = filepath.Join(data, "appservice.yaml")
		if err := os.WriteFile(s.Registration, b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(data, "signing.key"), []byte(newSigningKey()), 0o600); err != nil {
		return nil, err
	}

	config := filepath.Join(data, "homeserver.yaml")
	s.pick = func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		s.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		return os.WriteFile(config, []byte(s.homeserverYAML(ports[0])), 0o600)
	}
	s.args = func() []string {
		return []string{root, "python3", "-m", "synapse.app.homeserver", "-c", s.DataDirInRoot + "/homeserver.yaml"}
	}
	s.env = []string{"LANG=C.UTF-8", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"}
	s.ready = func(ctx context.Context, p *process) error {
		return poll(ctx, p, httpCheck(s.URL+"/_matrix/client/versions", func(body []byte) error {
			var v struct {
				Versions []string `json:"versions"`
			}
			if err := json.Unmarshal(body, &v); err != nil || len(v.Versions) == 0 {
				return fmt.Errorf("unexpected /versions answer %q (%v)", body, err)
			}
			return nil
		}))
	}
	return s, nil
}

// homeserverYAML is the homeserver config for a listener on port (JSON is
// YAML).
func (s *Synapse) homeserverYAML(port int) string {
	d := s.DataDirInRoot
	unlimited := map[string]any{"per_second": 100000, "burst_count": 1000000}
	appservices := []string{}
	if s.Registration != "" {
		appservices = append(appservices, d+"/appservice.yaml")
	}
	cfg := map[string]any{
		"server_name":    s.ServerName,
		"public_baseurl": s.URL + "/",
		"listeners": []any{map[string]any{
			"port": port, "bind_addresses": []string{"127.0.0.1"},
			"type": "http", "tls": false, "x_forwarded": false,
			"resources": []any{map[string]any{"names": []string{"client"}, "compress": false}},
		}},
		"database": map[string]any{
			"name": "sqlite3",
			"args": map[string]any{"database": d + "/homeserver.db"},
		},
		"media_store_path":                         d + "/media_store",
		"signing_key_path":                         d + "/signing.key",
		"trusted_key_servers":                      []any{},
		"suppress_key_server_warning":              true,
		"report_stats":                             false,
		"enable_metrics":                           false,
		"url_preview_enabled":                      false,
		"enable_registration":                      true,
		"enable_registration_without_verification": true,
		"registration_shared_secret":               s.sharedSecret,
		"macaroon_secret_key":                      s.sharedSecret + "-macaroon",
		"form_secret":                              s.sharedSecret + "-form",
		"app_service_config_files":                 appservices,
		"federation_domain_whitelist":              []string{},
		"rc_message":                               unlimited,
		"rc_registration":                          unlimited,
		"rc_registration_token_validity":           unlimited,
		"rc_login":                                 map[string]any{"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
		"rc_admin_redaction":                       unlimited,
		"rc_joins":                                 map[string]any{"local": unlimited, "remote": unlimited},
		"rc_joins_per_room":                        unlimited,
		"rc_key_requests":                          unlimited,
		"rc_3pid_validation":                       unlimited,
		"rc_invites":                               map[string]any{"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
		"rc_third_party_invite":                    unlimited,
		"rc_media_create":                          unlimited,
		"rc_presence":                              map[string]any{"per_user": unlimited},
		"rc_delayed_event_mgmt":                    unlimited,
		"rc_room_creation":                         unlimited,
		"rc_reports":                               unlimited,
		"rc_user_directory":                        unlimited,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // only plain values above
	}
	return string(b) + "\n"
}

// RegisterUser registers the local user localpart with password through
// Synapse's shared-secret admin API and returns its user ID and an access
// token. It fails the test on any error.
func (s *Synapse) RegisterUser(t testing.TB, localpart, password string) (userID, accessToken string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	userID, accessToken, err := s.register(ctx, localpart, password)
	if err != nil {
		t.Fatalf("testsvc: synapse: register %q: %v", localpart, err)
	}
	return userID, accessToken
}

// Register is RegisterUser outside a test: it registers the local user
// localpart with password (shared-secret admin API) and returns its user
// ID and an access token.
func (s *Synapse) Register(ctx context.Context, localpart, password string) (userID, accessToken string, err error) {
	return s.register(ctx, localpart, password)
}

func (s *Synapse) register(ctx context.Context, localpart, password string) (userID, accessToken string, err error) {
	return registerSharedSecret(ctx, s.URL, s.sharedSecret, localpart, password)
}

// doJSON sends body (nil: none) as JSON and decodes a 200 answer into out.
func doJSON(ctx context.Context, method, url string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// newSigningKey returns a Synapse signing key file: "ed25519 VERSION SEED"
// with the 32-byte seed in unpadded base64.
func newSigningKey() string {
	seed := make([]byte, 32)
	_, _ = rand.Read(seed) // never fails (crypto/rand)
	return "ed25519 a_test " + base64.RawStdEncoding.EncodeToString(seed) + "\n"
}

// removeStaleData removes the data directories left under parent by test
// processes that are gone (killed before their cleanups ran).
func removeStaleData(parent string, logf func(format string, args ...any)) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidText, _, ok := strings.Cut(e.Name(), ".")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // still running, or not ours to judge
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue // pid just reused? leave young ones alone
		}
		if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
			logf("testsvc: removing stale synapse data: %v", err)
		}
	}
}

// relUnder is target relative to base, an error when it is not under base.
func relUnder(base, target string) (string, error) {
	rel, err := filepath.Rel(base, target)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("testsvc: %s is not under %s (%v)", target, base, err)
	}
	return rel, nil
}
