package testsvc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the shared-secret registration MAC is HMAC-SHA1.
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/goccy/go-yaml"
)

// DendriteOptions configures RunDendrite.
type DendriteOptions struct {
	// AppserviceRegistration is the path of an appservice
	// registration.yaml. It is copied into the homeserver's data directory
	// (see Dendrite.Registration) and listed in
	// app_service_api.config_files. Empty: no appservice.
	AppserviceRegistration string
}

// Dendrite is a running Dendrite homeserver (v0.13.8, built by
// cmd/testservers/build.sh: SQLite databases, JetStream on disk, client API
// only, federation disabled) with open registration, shared-secret
// registration and rate limits off. Its data, config and logs are in
// Server.Dir(); warnings and errors go to its stderr log, the rest to its
// stdout log.
type Dendrite struct {
	*Server
	// URL is the client-server API base, http://127.0.0.1:PORT. It stays
	// the same across Stop and Start.
	URL string
	// ServerName is the homeserver's name: user IDs are @local:ServerName.
	ServerName string
	// Registration is the path of the copy of the appservice registration
	// that Dendrite reads at each start ("" without one). Dendrite loads
	// registrations only at startup: edit this file, then Restart.
	Registration string
	// DataDir holds the config (dendrite.yaml), the signing key, the
	// databases, media and JetStream's storage.
	DataDir string

	sharedSecret string
}

// RunDendrite starts a Dendrite with empty databases on a free loopback
// port and returns once /_matrix/client/versions answers; t.Cleanup stops
// it. The config is `generate-config -ci` (the binary
// dendrite-generate-config beside dendrite) with: a signing key of its
// own, federation disabled, JetStream kept on disk (a Restart keeps the
// homeserver's queue for the appservice), MSCs off, debug logging and the
// appservice registration.
func RunDendrite(t testing.TB, opts DendriteOptions) *Dendrite {
	t.Helper()
	genConfig := Bin(t, "dendrite-generate-config")
	d := &Dendrite{Server: newServer(t, "dendrite"), ServerName: "localhost", sharedSecret: rand.Text()}
	d.DataDir = filepath.Join(d.dir, "data")
	if err := os.MkdirAll(d.DataDir, 0o755); err != nil {
		t.Fatalf("testsvc: dendrite: %v", err)
	}
	if opts.AppserviceRegistration != "" {
		b, err := os.ReadFile(opts.AppserviceRegistration)
		if err != nil {
			t.Fatalf("testsvc: dendrite: appservice registration: %v", err)
		}
		d.Registration = filepath.Join(d.DataDir, "appservice.yaml")
		if err := os.WriteFile(d.Registration, b, 0o600); err != nil {
			t.Fatalf("testsvc: dendrite: %v", err)
		}
	}
	keyPath := filepath.Join(d.DataDir, "matrix_key.pem")
	if err := os.WriteFile(keyPath, newDendriteKey(), 0o600); err != nil {
		t.Fatalf("testsvc: dendrite: %v", err)
	}
	config := filepath.Join(d.DataDir, "dendrite.yaml")
	if err := d.writeConfig(genConfig, config, keyPath); err != nil {
		t.Fatalf("testsvc: dendrite: config: %v", err)
	}

	var listen string
	d.pick = func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		d.URL = "http://" + listen
		return nil
	}
	d.args = func() []string {
		return []string{"-config", config, "-http-bind-address", listen, "-really-enable-open-registration"}
	}
	d.ready = func(ctx context.Context, p *process) error {
		return poll(ctx, p, httpCheck(d.URL+"/_matrix/client/versions", func(body []byte) error {
			if !bytes.Contains(body, []byte(`"versions"`)) {
				return fmt.Errorf("unexpected /versions answer %q", body)
			}
			return nil
		}))
	}
	d.Start(t)
	return d
}

// writeConfig writes Dendrite's config: the CI defaults of
// generate-config, adjusted.
func (d *Dendrite) writeConfig(genConfig, path, keyPath string) error {
	cmd := exec.Command(genConfig, "-ci", "-dir", d.DataDir, "-server", d.ServerName)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", genConfig, err, stderr.Bytes())
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		return fmt.Errorf("%s printed no YAML map: %w", genConfig, err)
	}
	section := func(name string) map[string]any {
		m, ok := cfg[name].(map[string]any)
		if !ok {
			m = map[string]any{}
			cfg[name] = m
		}
		return m
	}
	global := section("global")
	global["private_key"] = keyPath
	global["disable_federation"] = true
	global["jetstream"] = map[string]any{"in_memory": false, "storage_path": d.DataDir, "topic_prefix": "Dendrite"}
	section("client_api")["registration_shared_secret"] = d.sharedSecret
	registrations := []string{}
	if d.Registration != "" {
		registrations = append(registrations, d.Registration)
	}
	section("app_service_api")["config_files"] = registrations
	section("mscs")["mscs"] = []string{}
	cfg["logging"] = []any{map[string]any{"type": "std", "level": "debug"}}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// RegisterUser registers the local user localpart with password through
// the shared-secret registration API (/_synapse/admin/v1/register, which
// Dendrite also serves) and returns its user ID and an access token. It
// fails the test on any error.
func (d *Dendrite) RegisterUser(t testing.TB, localpart, password string) (userID, accessToken string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	userID, accessToken, err := registerSharedSecret(ctx, d.URL, d.sharedSecret, localpart, password)
	if err != nil {
		t.Fatalf("testsvc: dendrite: register %q: %v", localpart, err)
	}
	return userID, accessToken
}

// registerSharedSecret registers a non-admin user through
// /_synapse/admin/v1/register on the homeserver at base.
func registerSharedSecret(ctx context.Context, base, secret, localpart, password string) (userID, accessToken string, err error) {
	endpoint := base + "/_synapse/admin/v1/register"
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := doJSON(ctx, http.MethodGet, endpoint, nil, &nonce); err != nil {
		return "", "", fmt.Errorf("nonce: %w", err)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(nonce.Nonce + "\x00" + localpart + "\x00" + password + "\x00notadmin"))
	req := map[string]any{
		"nonce": nonce.Nonce, "username": localpart, "password": password,
		"admin": false, "mac": hex.EncodeToString(mac.Sum(nil)),
	}
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	if err := doJSON(ctx, http.MethodPost, endpoint, req, &resp); err != nil {
		return "", "", err
	}
	if resp.UserID == "" || resp.AccessToken == "" {
		return "", "", fmt.Errorf("no user_id or access_token in the answer")
	}
	return resp.UserID, resp.AccessToken, nil
}

// newDendriteKey returns a Dendrite signing key file: a PEM block "MATRIX
// PRIVATE KEY" with a Key-ID header, holding the 32-byte ed25519 seed (what
// Dendrite's generate-keys writes).
func newDendriteKey() []byte {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed) // never fails (crypto/rand)
	return pem.EncodeToMemory(&pem.Block{
		Type:    "MATRIX PRIVATE KEY",
		Headers: map[string]string{"Key-ID": "ed25519:test"},
		Bytes:   seed,
	})
}
