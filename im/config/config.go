// Package config is Sandcat's typed configuration: the original server's
// config.yml keys with their meaning kept (sandcat-wire.md §1.4), new sections
// for what the original lacked, environment overrides for every key, and a
// validation that reports every problem at once.
//
// A backend is chosen by the presence of its section: db.postgres → PostgreSQL
// (else SQLite), db.mongodb → MongoDB (else the embedded inbox), redis → Redis
// (else in-memory counters and caches), kafka → Kafka (else the embedded bus),
// oss → MinIO (else local disk), consul → Consul (else static discovery).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// Config is the whole configuration.
type Config struct {
	Component     string         `yaml:"component"`
	DataDir       string         `yaml:"data_dir"`
	Log           Log            `yaml:"log"`
	DB            DB             `yaml:"db"`
	Server        Server         `yaml:"server"`
	Websocket     Websocket      `yaml:"websocket"`
	Redis         *Redis         `yaml:"redis"`
	Kafka         *Kafka         `yaml:"kafka"`
	OSS           *OSS           `yaml:"oss"`
	Mail          Mail           `yaml:"mail"`
	Consul        *Consul        `yaml:"consul"`
	Appservice    *Appservice    `yaml:"appservice"`
	Sequence      Sequence       `yaml:"sequence"`
	Retention     Retention      `yaml:"retention"`
	Metrics       Metrics        `yaml:"metrics"`
	ServiceCenter *ServiceCenter `yaml:"service_center"` // original synapse registry: accepted, unused
	RPC           map[string]any `yaml:"rpc"`            // original gRPC sections: accepted, unused
}

// Log is the `log` section.
type Log struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn, error
	Output string `yaml:"output"` // console, or a directory for daily files
}

// DB is the `db` section.
type DB struct {
	Postgres *Postgres `yaml:"postgres"`
	MongoDB  *MongoDB  `yaml:"mongodb"`
	SQLite   SQLite    `yaml:"sqlite"`
	Xdb      string    `yaml:"xdb"`
}

// Postgres selects PostgreSQL for the relational stores.
type Postgres struct {
	Host           string `yaml:"host"`
	Port           int    `yaml:"port"`
	User           string `yaml:"user"`
	Password       string `yaml:"password"`
	Database       string `yaml:"database"`
	MaxConnections int    `yaml:"max_connections"`
	SSLMode        string `yaml:"sslmode"`
}

// URL is the connection URL built from the fields.
func (p *Postgres) URL() string {
	auth := p.User
	if p.Password != "" {
		auth += ":" + p.Password
	}
	ssl := p.SSLMode
	if ssl == "" {
		ssl = "disable"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=%s", auth, p.Host, p.Port, p.Database, ssl)
}

// MongoDB selects MongoDB for the inbox.
type MongoDB struct {
	Host     string     `yaml:"host"`
	Port     int        `yaml:"port"`
	User     string     `yaml:"user"`
	Password string     `yaml:"password"`
	Database string     `yaml:"database"`
	Clean    InboxClean `yaml:"clean"`
}

// URL is the connection URL built from the fields.
func (m *MongoDB) URL() string {
	auth := ""
	if m.User != "" {
		auth = m.User
		if m.Password != "" {
			auth += ":" + m.Password
		}
		auth += "@"
	}
	return fmt.Sprintf("mongodb://%s%s:%d/%s", auth, m.Host, m.Port, m.Database)
}

// InboxClean is the retention of inbox entries (`db.mongodb.clean`; also used
// by the embedded inbox through `retention.inbox`).
type InboxClean struct {
	Period      int64    `yaml:"period"` // days
	ExceptTypes []string `yaml:"except_types"`
}

// SQLite is the embedded database (used when db.postgres is absent).
type SQLite struct {
	Path string `yaml:"path"` // default <data_dir>/sandcat.db
}

// Server is the HTTP API.
type Server struct {
	Host         string  `yaml:"host"`
	Port         int     `yaml:"port"`
	Advertise    string  `yaml:"advertise"` // host:port registered in Consul (default host:port)
	JWTSecret    string  `yaml:"jwt_secret"`
	WSLBStrategy string  `yaml:"ws_lb_strategy"`
	OAuth2       *OAuth2 `yaml:"oauth2"`
}

// OAuth2 holds the third-party login clients.
type OAuth2 struct {
	Google *OAuthClient `yaml:"google"`
	Github *OAuthClient `yaml:"github"`
}

// OAuthClient is one OAuth2 client.
type OAuthClient struct {
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	AuthURL      string `yaml:"auth_url"`
	TokenURL     string `yaml:"token_url"`
	RedirectURL  string `yaml:"redirect_url"`
	UserInfoURL  string `yaml:"user_info_url"`
	EmailURL     string `yaml:"email_url"`
}

// Websocket is the client-facing gateway listener.
type Websocket struct {
	Protocol string   `yaml:"protocol"` // ws or wss, used to build ws_addr
	Host     string   `yaml:"host"`     // bind host
	Port     int      `yaml:"port"`
	Name     string   `yaml:"name"`
	Tags     []string `yaml:"tags"`
	// Advertise is the host[:port] clients reach this gateway at (bug B12 of the
	// original registered the bind host). Default: host:port.
	Advertise    string `yaml:"advertise"`
	PingInterval int    `yaml:"ping_interval"`  // seconds, default 30
	SendQueueKiB int    `yaml:"send_queue_kib"` // per-connection send queue bound, default 1024
	// GatewayID names this gateway in the online routes (default: a unique id per process).
	GatewayID string `yaml:"gateway_id"`
	// PushListen is the internal listener message servers push deliveries to
	// (multi-process deployments; default 127.0.0.1:50002).
	PushListen string `yaml:"push_listen"`
	// PushAdvertise is what message servers dial for PushListen (default
	// PushListen, with this machine's host name when it binds every interface).
	PushAdvertise string `yaml:"push_advertise"`
	// PushSecret authenticates pushes (default: derived from server.jwt_secret).
	PushSecret string `yaml:"push_secret"`
}

// Redis selects Redis for seqs, caches, codes, token revocation and routes.
type Redis struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	SeqStep  int64  `yaml:"seq_step"`
	Prefix   string `yaml:"prefix"`
}

// Addr is host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("%s:%d", r.Host, r.Port) }

// Kafka selects Kafka for the message bus.
type Kafka struct {
	Hosts          []string      `yaml:"hosts"`
	Topic          string        `yaml:"topic"`
	Group          string        `yaml:"group"`
	ConnectTimeout int           `yaml:"connect_timeout"` // ms
	Partitions     int           `yaml:"partitions"`
	Producer       KafkaProducer `yaml:"producer"`
	Consumer       KafkaConsumer `yaml:"consumer"`
}

// KafkaProducer is `kafka.producer`.
type KafkaProducer struct {
	Timeout       int    `yaml:"timeout"`
	Acks          string `yaml:"acks"`
	MaxRetry      int    `yaml:"max_retry"`
	RetryInterval int    `yaml:"retry_interval"`
}

// KafkaConsumer is `kafka.consumer`.
type KafkaConsumer struct {
	AutoOffsetReset string `yaml:"auto_offset_reset"`
	SessionTimeout  int    `yaml:"session_timeout"`
}

// OSS selects MinIO/S3 for files.
type OSS struct {
	Endpoint     string `yaml:"endpoint"`
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	Bucket       string `yaml:"bucket"`
	AvatarBucket string `yaml:"avatar_bucket"`
	Region       string `yaml:"region"`
	UseSSL       bool   `yaml:"use_ssl"`
}

// Mail is the SMTP relay for verification codes. No server: codes are logged.
type Mail struct {
	Server   string `yaml:"server"` // host:port
	Account  string `yaml:"account"`
	Password string `yaml:"password"`
	From     string `yaml:"from"`
	TLS      string `yaml:"tls"` // tls (default), starttls, none
	TempPath string `yaml:"temp_path"`
	TempFile string `yaml:"temp_file"`
}

// Consul selects Consul for service discovery.
type Consul struct {
	Address         string   `yaml:"address"` // host:port of the agent's HTTP API
	Token           string   `yaml:"token"`
	TTL             int      `yaml:"ttl"`              // seconds of the health check TTL, default 15
	DeregisterAfter int      `yaml:"deregister_after"` // seconds critical before removal, default 60
	Tags            []string `yaml:"tags"`
}

// Appservice configures the Matrix bridge.
type Appservice struct {
	ID              string `yaml:"id"`
	Listen          string `yaml:"listen"`
	HomeserverURL   string `yaml:"homeserver_url"`
	HomeserverName  string `yaml:"homeserver_name"`
	ASToken         string `yaml:"as_token"`
	HSToken         string `yaml:"hs_token"`
	SenderLocalpart string `yaml:"sender_localpart"`
	UserPrefix      string `yaml:"user_prefix"`
	AliasPrefix     string `yaml:"alias_prefix"`
	// ProfileSyncSeconds: how often puppets' names and avatars are checked
	// against their Sandcat users' (users who changed them and stay silent);
	// default 30.
	ProfileSyncSeconds int `yaml:"profile_sync_seconds"`
}

// Metrics is where a process without an HTTP listener of its own (a
// msgserver alone) serves /health and /metrics.
type Metrics struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:50003
}

// Sequence configures seq allocation when Redis is absent (redis.seq_step wins when present).
type Sequence struct {
	Step int64 `yaml:"step"`
}

// Retention configures the cleanup jobs of the embedded and production stores.
type Retention struct {
	InboxDays   int64 `yaml:"inbox_days"`   // embedded inbox; db.mongodb.clean.period wins for MongoDB
	HistoryDays int64 `yaml:"history_days"` // history partitions/rows; 0 keeps forever
	FileDays    int64 `yaml:"file_days"`    // unreferenced files; 0 keeps forever
}

// ServiceCenter is the original registry section (accepted for old files, unused).
type ServiceCenter struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Protocol string `yaml:"protocol"`
	Timeout  int    `yaml:"timeout"`
}

// Roles a process can run.
const (
	RoleAll        = "all"
	RoleAPI        = "api"
	RoleGateway    = "gateway"
	RoleMsgServer  = "msgserver"
	RoleAppservice = "appservice"
)

// EnvPrefix starts every environment override: SANDCAT_<PATH>, the YAML path
// upper-cased and joined by "_", e.g. SANDCAT_SERVER_JWT_SECRET,
// SANDCAT_DB_POSTGRES_HOST, SANDCAT_KAFKA_HOSTS (comma-separated list).
const EnvPrefix = "SANDCAT_"

// Load reads the file at path (an empty path or a missing default file gives
// the embedded default), applies environment overrides from env, fills
// defaults and validates. All problems are reported together.
func Load(path string, mustExist bool, env []string) (*Config, error) {
	var raw []byte
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			raw = b
		case errors.Is(err, os.ErrNotExist) && !mustExist:
		default:
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}
	return Parse(raw, env)
}

// Parse is Load on bytes.
func Parse(raw []byte, env []string) (*Config, error) {
	var errs []error
	cfg := &Config{}
	if len(bytes.TrimSpace(raw)) > 0 {
		var generic map[string]any
		if err := yaml.Unmarshal(raw, &generic); err != nil {
			return nil, fmt.Errorf("config: not valid YAML: %w", err)
		}
		errs = append(errs, unknownKeys("", generic, reflect.TypeOf(Config{}))...)
		if err := yaml.Unmarshal(raw, cfg); err != nil {
			errs = append(errs, fmt.Errorf("config: %w", err))
		}
	}
	errs = append(errs, applyEnv(cfg, env)...)
	cfg.setDefaults()
	errs = append(errs, cfg.validate()...)
	if len(errs) > 0 {
		return nil, &Errors{List: errs}
	}
	return cfg, nil
}

// Errors is every configuration problem found.
type Errors struct{ List []error }

func (e *Errors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d problem(s):", len(e.List))
	for _, err := range e.List {
		b.WriteString("\n  - ")
		b.WriteString(strings.TrimPrefix(err.Error(), "config: "))
	}
	return b.String()
}

func (e *Errors) Unwrap() []error { return e.List }

// Embedded reports whether no backend section is configured.
func (c *Config) Embedded() bool {
	return c.DB.Postgres == nil && c.DB.MongoDB == nil && c.Redis == nil && c.Kafka == nil &&
		c.OSS == nil && c.Consul == nil
}

// SeqStep is the size of a seq block.
func (c *Config) SeqStep() int64 {
	if c.Redis != nil && c.Redis.SeqStep > 0 {
		return c.Redis.SeqStep
	}
	return c.Sequence.Step
}

// Runs reports whether this process runs role r.
func (c *Config) Runs(r string) bool {
	if c.Component == RoleAll {
		return r != RoleAppservice || c.Appservice != nil
	}
	return c.Component == r
}

// SQLitePath is where the embedded database lives.
func (c *Config) SQLitePath() string {
	if c.DB.SQLite.Path != "" {
		return c.DB.SQLite.Path
	}
	return filepath.Join(c.DataDir, "sandcat.db")
}

func (c *Config) setDefaults() {
	switch strings.ToLower(c.Component) {
	case "":
		c.Component = RoleAll
	case "messagegateway", "ws":
		c.Component = RoleGateway
	case "messageserver":
		c.Component = RoleMsgServer
	default:
		c.Component = strings.ToLower(c.Component)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.DataDir, "data")
	def(&c.Log.Level, "info")
	def(&c.Log.Output, "console")
	def(&c.Server.Host, "127.0.0.1")
	defInt(&c.Server.Port, 50001)
	def(&c.Server.WSLBStrategy, "RoundRobin")
	def(&c.Websocket.Protocol, "ws")
	def(&c.Websocket.Host, "127.0.0.1")
	defInt(&c.Websocket.Port, 50000)
	def(&c.Websocket.Name, "websocket")
	defInt(&c.Websocket.PingInterval, 30)
	defInt(&c.Websocket.SendQueueKiB, 1024)
	def(&c.Mail.TLS, "tls")
	if c.Sequence.Step == 0 {
		c.Sequence.Step = 10000
	}
	if c.Retention.InboxDays == 0 {
		c.Retention.InboxDays = 3600
	}
	if p := c.DB.Postgres; p != nil {
		def(&p.Host, "127.0.0.1")
		defInt(&p.Port, 5432)
		def(&p.User, "postgres")
		def(&p.Database, "im")
		defInt(&p.MaxConnections, 16)
	}
	if m := c.DB.MongoDB; m != nil {
		def(&m.Host, "127.0.0.1")
		defInt(&m.Port, 27017)
		def(&m.Database, "im")
		if m.Clean.Period == 0 {
			m.Clean.Period = c.Retention.InboxDays
		}
	}
	if r := c.Redis; r != nil {
		def(&r.Host, "127.0.0.1")
		defInt(&r.Port, 6379)
		def(&r.Prefix, "sandcat:")
	}
	if k := c.Kafka; k != nil {
		def(&k.Topic, "sandcat-chat")
		def(&k.Group, "chat")
		defInt(&k.Partitions, 8)
		defInt(&k.ConnectTimeout, 5000)
	}
	if o := c.OSS; o != nil {
		def(&o.Bucket, "sandcat")
		def(&o.AvatarBucket, "sandcat-avatar")
		def(&o.Region, "us-east-1")
	}
	if c.Consul != nil {
		def(&c.Consul.Address, "127.0.0.1:8500")
		defInt(&c.Consul.TTL, 15)
		defInt(&c.Consul.DeregisterAfter, 60)
	}
	def(&c.Websocket.PushListen, "127.0.0.1:50002")
	def(&c.Metrics.Listen, "127.0.0.1:50003")
	if a := c.Appservice; a != nil {
		def(&a.ID, "sandcat")
		def(&a.Listen, "127.0.0.1:29400")
		def(&a.SenderLocalpart, "sandcatbot")
		def(&a.UserPrefix, "sandcat_")
		def(&a.AliasPrefix, "sandcat_")
		if a.ProfileSyncSeconds == 0 {
			a.ProfileSyncSeconds = 30
		}
	}
}

func (c *Config) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Component {
	case RoleAll, RoleAPI, RoleGateway, RoleMsgServer, RoleAppservice:
	default:
		bad("component", "%q is not one of all, api, gateway (messagegateway), msgserver (messageserver), appservice", c.Component)
	}
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	port := func(key string, p int) {
		if p < 1 || p > 65535 {
			bad(key, "port %d out of range 1-65535", p)
		}
	}
	port("server.port", c.Server.Port)
	port("websocket.port", c.Websocket.Port)
	switch c.Websocket.Protocol {
	case "ws", "wss":
	default:
		bad("websocket.protocol", "%q is not ws or wss", c.Websocket.Protocol)
	}
	switch c.Server.WSLBStrategy {
	case "RoundRobin", "Random":
	default:
		bad("server.ws_lb_strategy", "%q is not RoundRobin or Random", c.Server.WSLBStrategy)
	}
	switch c.Mail.TLS {
	case "tls", "starttls", "none":
	default:
		bad("mail.tls", "%q is not tls, starttls or none", c.Mail.TLS)
	}
	if c.Websocket.PingInterval < 1 {
		bad("websocket.ping_interval", "must be at least 1 second")
	}
	if c.Websocket.SendQueueKiB < 16 {
		bad("websocket.send_queue_kib", "must be at least 16")
	}
	if c.SeqStep() < 1 {
		bad("sequence.step", "must be positive")
	}
	if c.Component != RoleAll && c.Server.JWTSecret == "" {
		bad("server.jwt_secret", "required when roles run in separate processes (component %s)", c.Component)
	}
	if s := c.Server.JWTSecret; s != "" && len(s) < 16 {
		bad("server.jwt_secret", "too short (%d bytes): use at least 16 random bytes", len(s))
	}
	if c.Component != RoleAll {
		for _, miss := range []struct {
			key string
			nil bool
		}{{"db.postgres", c.DB.Postgres == nil}, {"kafka", c.Kafka == nil}, {"redis", c.Redis == nil}} {
			if miss.nil {
				bad(miss.key, "required when component is %s: separate processes share state through it", c.Component)
			}
		}
	}
	if p := c.DB.Postgres; p != nil {
		port("db.postgres.port", p.Port)
	}
	if m := c.DB.MongoDB; m != nil {
		port("db.mongodb.port", m.Port)
		if m.Clean.Period < 0 {
			bad("db.mongodb.clean.period", "must not be negative")
		}
	}
	if r := c.Redis; r != nil {
		port("redis.port", r.Port)
	}
	if k := c.Kafka; k != nil {
		if len(k.Hosts) == 0 {
			bad("kafka.hosts", "at least one broker is required")
		}
		if k.Partitions < 1 {
			bad("kafka.partitions", "must be positive")
		}
	}
	if o := c.OSS; o != nil {
		if o.Endpoint == "" {
			bad("oss.endpoint", "required")
		}
		if o.AccessKey == "" || o.SecretKey == "" {
			bad("oss.access_key", "access_key and secret_key are required")
		}
	}
	if c.Consul != nil {
		unspecified := func(host string) bool { return host == "0.0.0.0" || host == "::" || host == "" }
		if c.Runs(RoleGateway) && c.Websocket.Advertise == "" && unspecified(c.Websocket.Host) {
			bad("websocket.advertise", "required when websocket.host is %q: clients cannot dial it", c.Websocket.Host)
		}
		if c.Runs(RoleAPI) && c.Server.Advertise == "" && unspecified(c.Server.Host) {
			bad("server.advertise", "required when server.host is %q", c.Server.Host)
		}
		if _, _, err := net.SplitHostPort(c.Websocket.PushListen); err != nil {
			bad("websocket.push_listen", "%q is not host:port", c.Websocket.PushListen)
		}
		if c.Consul.TTL < 1 {
			bad("consul.ttl", "must be at least 1 second")
		}
	}
	if a := c.Appservice; a != nil {
		if a.HomeserverURL == "" {
			bad("appservice.homeserver_url", "required")
		}
		if a.HomeserverName == "" {
			bad("appservice.homeserver_name", "required")
		}
		if a.ASToken == "" || a.HSToken == "" {
			bad("appservice.as_token", "as_token and hs_token are required (sandcat appservice registration writes them)")
		}
		if a.ProfileSyncSeconds < 1 {
			bad("appservice.profile_sync_seconds", "must be at least 1")
		}
	}
	if oa := c.Server.OAuth2; oa != nil {
		for name, cl := range map[string]*OAuthClient{"github": oa.Github, "google": oa.Google} {
			if cl == nil {
				continue
			}
			if cl.ClientID == "" || cl.ClientSecret == "" {
				bad("server.oauth2."+name, "client_id and client_secret are required")
			}
		}
	}
	return errs
}

// unknownKeys lists keys of m that have no field in t (recursively).
func unknownKeys(prefix string, m map[string]any, t reflect.Type) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s%s: unknown key", prefix, k))
			continue
		}
		if sub, ok := m[k].(map[string]any); ok {
			errs = append(errs, unknownKeys(prefix+k+".", sub, ft)...)
		}
	}
	return errs
}

// toolVar tells the SANDCAT_* variables of the project's own tools, which
// are no config keys and never refused: SANDCAT_TESTBIN (the folder of the
// test servers, exported by `make test` and .ci/run) and SANDCAT_BENCH_*
// (the load tool).
func toolVar(name string) bool {
	return name == "SANDCAT_TESTBIN" || strings.HasPrefix(name, "SANDCAT_BENCH_")
}

// applyEnv sets fields from SANDCAT_* variables; a variable under an absent
// section creates the section (so SANDCAT_REDIS_HOST alone selects Redis).
func applyEnv(cfg *Config, env []string) []error {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) && !toolVar(k) {
			vars[strings.TrimPrefix(k, EnvPrefix)] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	var errs []error
	used := map[string]bool{}
	walkEnv(reflect.ValueOf(cfg).Elem(), "", vars, used, &errs)
	names := make([]string, 0, len(vars))
	for k := range vars {
		if !used[k] {
			names = append(names, EnvPrefix+k)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		errs = append(errs, fmt.Errorf("%s: environment variable names no config key", n))
	}
	return errs
}

func walkEnv(v reflect.Value, prefix string, vars map[string]string, used map[string]bool, errs *[]error) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" || f.Type.Kind() == reflect.Map {
			continue
		}
		key := prefix + strings.ToUpper(name)
		fv := v.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			if !hasPrefix(vars, key+"_") {
				continue
			}
			if fv.IsNil() {
				fv.Set(reflect.New(ft.Elem()))
			}
			walkEnv(fv.Elem(), key+"_", vars, used, errs)
			continue
		}
		if ft.Kind() == reflect.Struct {
			walkEnv(fv, key+"_", vars, used, errs)
			continue
		}
		raw, ok := vars[key]
		if !ok {
			continue
		}
		used[key] = true
		if err := setScalar(fv, raw); err != nil {
			*errs = append(*errs, fmt.Errorf("%s%s: %w", EnvPrefix, key, err))
		}
	}
}

func hasPrefix(vars map[string]string, p string) bool {
	for k := range vars {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func setScalar(v reflect.Value, raw string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", raw)
		}
		v.SetBool(b)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type")
		}
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
