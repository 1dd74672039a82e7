package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEmbeddedDefault(t *testing.T) {
	for _, raw := range []string{"", "component: all\n", "log:\n  level: debug\n"} {
		cfg, err := Parse([]byte(raw), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if !cfg.Embedded() || cfg.Component != RoleAll || cfg.DataDir != "data" || cfg.Server.Port != 50001 ||
			cfg.Websocket.Port != 50000 || cfg.SeqStep() != 10000 {
			t.Errorf("%q: unexpected defaults %+v", raw, cfg)
		}
		if cfg.SQLitePath() != filepath.Join("data", "sandcat.db") {
			t.Errorf("sqlite path %s", cfg.SQLitePath())
		}
	}
}

func TestBackendSelection(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want func(*Config) bool
	}{
		{"postgres", "db:\n  postgres:\n    host: db\n", func(c *Config) bool {
			return c.DB.Postgres != nil && c.DB.Postgres.URL() == "postgres://postgres@db:5432/im?sslmode=disable"
		}},
		{"mongodb", "db:\n  mongodb:\n    user: u\n    password: p\n", func(c *Config) bool {
			return c.DB.MongoDB != nil && c.DB.MongoDB.URL() == "mongodb://u:p@127.0.0.1:27017/im"
		}},
		{"redis", "redis:\n  seq_step: 50\n", func(c *Config) bool { return c.Redis != nil && c.SeqStep() == 50 && c.Redis.Prefix == "sandcat:" }},
		{"kafka", "kafka:\n  hosts: [a:9092]\n", func(c *Config) bool { return c.Kafka != nil && c.Kafka.Topic == "sandcat-chat" }},
		{"legacy role", "component: messagegateway\nserver:\n  jwt_secret: 0123456789abcdef0\ndb:\n  postgres: {}\nredis: {}\nkafka:\n  hosts: [k:1]\n",
			func(c *Config) bool { return c.Component == RoleGateway }},
		{"legacy sections accepted", "service_center:\n  host: 127.0.0.1\n  port: 8500\nrpc:\n  health_check: true\n",
			func(c *Config) bool { return c.Embedded() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.raw), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(cfg) {
				t.Errorf("unexpected config %+v", cfg)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	env := []string{
		"SANDCAT_SERVER_PORT=6000",
		"SANDCAT_SERVER_JWT_SECRET=abcdefghijklmnopq",
		"SANDCAT_REDIS_HOST=redis.internal",
		"SANDCAT_KAFKA_HOSTS=k1:9092, k2:9092",
		"PATH=/bin",
	}
	cfg, err := Parse([]byte("server:\n  port: 5000\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Port != 6000 || cfg.Server.JWTSecret != "abcdefghijklmnopq" {
		t.Errorf("server: %+v", cfg.Server)
	}
	if cfg.Redis == nil || cfg.Redis.Host != "redis.internal" || cfg.Redis.Port != 6379 {
		t.Errorf("redis: %+v", cfg.Redis)
	}
	if cfg.Kafka == nil || strings.Join(cfg.Kafka.Hosts, "|") != "k1:9092|k2:9092" {
		t.Errorf("kafka: %+v", cfg.Kafka)
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	raw := `component: bogus
log:
  level: loud
server:
  port: 70000
  jwt_secret: short
  colour: blue
websocket:
  protocol: http
mail:
  tls: maybe
unknown_section: 1
`
	_, err := Parse([]byte(raw), []string{"SANDCAT_SERVER_PORT=x", "SANDCAT_NOPE=1"})
	var ce *Errors
	if !errors.As(err, &ce) {
		t.Fatalf("want *Errors, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"component", "log.level", "server.port", "server.jwt_secret", "server.colour: unknown key",
		"websocket.protocol", "mail.tls", "unknown_section: unknown key", "SANDCAT_SERVER_PORT", "SANDCAT_NOPE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestSeparateRolesNeedSharedBackends(t *testing.T) {
	_, err := Parse([]byte("component: api\n"), nil)
	if err == nil {
		t.Fatal("api alone on the embedded default must be refused")
	}
	for _, want := range []string{"server.jwt_secret", "db.postgres", "kafka", "redis"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yml"), false, nil); err != nil {
		t.Errorf("missing optional file: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yml"), true, nil); err == nil {
		t.Error("missing required file accepted")
	}
	p := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(p, []byte("server:\n  port: [1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, true, nil); err == nil {
		t.Error("invalid YAML accepted")
	}
}

// The committed example files must stay valid.
func TestCommittedFilesParse(t *testing.T) {
	// The production file gets its secrets and addresses from the
	// environment, as docker-compose.yml gives them.
	prodEnv := []string{"SANDCAT_SERVER_JWT_SECRET=0123456789abcdef0123",
		"SANDCAT_OSS_SECRET_KEY=minio-secret", "SANDCAT_WEBSOCKET_ADVERTISE=chat.example.com:50000",
		"SANDCAT_SERVER_ADVERTISE=api:50001"}
	for _, tc := range []struct {
		file     string
		env      []string
		embedded bool
	}{{"../../config.yml", nil, true}, {"../../config.production.yml", prodEnv, false}} {
		cfg, err := Load(tc.file, true, tc.env)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if cfg.Embedded() != tc.embedded {
			t.Errorf("%s: embedded = %v", tc.file, cfg.Embedded())
		}
	}
}

// The project's tools export SANDCAT_TESTBIN (make test, .ci/run) and
// SANDCAT_BENCH_* (the load tool): they are no config keys, and a sandcat
// started from such a shell (make run) must not refuse them; anything else
// under the prefix still is refused.
func TestToolVariablesAreNotConfig(t *testing.T) {
	tests := []struct {
		env     []string
		wantErr string
	}{
		{[]string{"SANDCAT_TESTBIN=/root/.cache/sandcat-testbin"}, ""},
		{[]string{"SANDCAT_BENCH_CONFIG=/tmp/x.yml", "SANDCAT_BENCH_ROLE=serve"}, ""},
		{[]string{"SANDCAT_TESTBIN=/x", "SANDCAT_TESTBINS=/y"}, "SANDCAT_TESTBINS"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte("data_dir: /tmp/d\n"), tc.env)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: %v, want an error naming %s", tc.env, err, tc.wantErr)
		}
	}
}
