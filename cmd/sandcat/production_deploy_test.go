package main

// The production deployment as separate OS processes: the real sandcat
// binary as api, gateways and msgservers over real PostgreSQL and Redis (of
// this machine), FerretDB (MongoDB wire), kfake (Kafka wire), MinIO and a
// Consul agent (im/testsvc). Each process gets its own config file with every
// backend section and its role, secrets and ports from the environment, as
// docker-compose.yml does.

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/redis/go-redis/v9"

	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
)

// Bounds of the waits of the deployment: generous guards against a hang,
// never timing assertions.
const (
	waitDeploy = 90 * time.Second // processes registered, ready, partitions assigned
	waitEvent  = 60 * time.Second // one observable change (a lapse, a takeover, a delivery)
)

// deployment is the backing servers and the sandcat processes.
type deployment struct {
	t          *testing.T
	partitions int
	secret     string // server.jwt_secret, given by environment
	consul     *consul.Client
	redis      *redistest.Server
	rdb        *redis.Client
	prefix     string // redis.prefix
	minio      *testsvc.MinIO
	backends   string // the YAML of the backend sections, shared by every process

	api *node
	gws []*node
	mss []*node
}

// node is one sandcat process and what identifies it.
type node struct {
	name      string // api, gateway-1, msgserver-2, ...
	role      string
	in        *instance
	p         *proc
	advertise string // gateway: the host:port clients dial (websocket.advertise)
	pushAddr  string // gateway: its internal push listener
}

// wsAddr is the ws_addr a login answers for this gateway.
func (n *node) wsAddr() string { return "ws://" + n.advertise + "/ws" }

// wsBase is the gateway's own listener (health, metrics).
func (n *node) wsBase() string { return fmt.Sprintf("http://127.0.0.1:%d", n.in.wsPort) }

// registrations are the Consul service ids the process logged it
// registered, with their service names.
func (n *node) registrations() map[string]string {
	out := map[string]string{}
	for _, m := range registeredLine.FindAllStringSubmatch(n.p.log.all(), -1) {
		out[m[2]] = m[1]
	}
	return out
}

var registeredLine = regexp.MustCompile(`msg="discovery: registered in consul" service=(\S+) service_id=(\S+)`)

// startBackends starts the servers every process shares.
func startBackends(t *testing.T, partitions int) *deployment {
	t.Helper()
	d := &deployment{t: t, partitions: partitions, secret: "jwt-" + rand.Text() + rand.Text()}
	started := time.Now()

	pg, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	pgPort, _ := strconv.Atoi(pg.Port())
	if pgPort == 0 {
		pgPort = 5432
	}
	// A private redis-server, so that the test may restart it (every key
	// and script lost); a unique prefix all the same.
	d.redis = redistest.NewServer(t)
	d.rdb, d.prefix = d.redis.Client(t), redistest.Prefix()
	redisHost, redisPort := splitHostPort(t, d.redis.Addr())

	mongoURI, err := url.Parse(testsvc.RunFerretDB(t).URI)
	if err != nil {
		t.Fatal(err)
	}
	mongoHost, mongoPort := splitHostPort(t, mongoURI.Host)
	kafka := testsvc.RunKafka(t, partitions)
	d.minio = testsvc.RunMinIO(t)
	cons := testsvc.RunConsul(t)
	d.consul, err = discovery.NewConsulClient(cons.HTTPAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backing servers up in %v (postgres db %s, redis prefix %s, ferretdb %s, kfake %v, minio %s, consul %s)",
		time.Since(started).Round(time.Millisecond), strings.TrimPrefix(pg.Path, "/"), d.prefix, mongoURI.Host,
		kafka.Brokers, d.minio.Endpoint, cons.HTTPAddr)

	d.backends = fmt.Sprintf(`db:
  postgres:
    host: %s
    port: %d
    user: %s
    database: %s
    max_connections: 8
  mongodb:
    host: %s
    port: %d
    database: im
redis:
  host: %s
  port: %d
  prefix: %q
kafka:
  hosts: [%s]
  topic: sandcat-chat
  group: chat
  partitions: %d
  consumer:
    session_timeout: 6000
oss:
  endpoint: %s
  access_key: %s
  bucket: sandcat
  avatar_bucket: sandcat-avatar
consul:
  address: %s
  ttl: 2
  deregister_after: 60
`, pg.Hostname(), pgPort, pg.User.Username(), strings.TrimPrefix(pg.Path, "/"),
		mongoHost, mongoPort, redisHost, redisPort, d.prefix,
		strings.Join(kafka.Brokers, ", "), partitions,
		d.minio.Endpoint, d.minio.AccessKey, cons.HTTPAddr)
	return d
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h, n
}

// newNode writes the config of one process; spawn starts it.
func (d *deployment) newNode(name, role string) *node {
	t := d.t
	t.Helper()
	root := t.TempDir()
	n := &node{name: name, role: role, in: &instance{t: t, dir: filepath.Join(root, "data"),
		config: filepath.Join(root, "config.yml"), apiPort: freePort(t), wsPort: freePort(t)}}
	pushPort := freePort(t)
	n.pushAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(pushPort))
	// The advertised address differs from the bind address (bug B12): a
	// login that answers it proves the registration carries it.
	n.advertise = net.JoinHostPort("localhost", strconv.Itoa(n.in.wsPort))
	cfg := fmt.Sprintf(`# %s of the production test
component: all # SANDCAT_COMPONENT chooses the role
data_dir: %s
log:
  level: info
  output: console
server:
  host: 127.0.0.1
  port: %d
  ws_lb_strategy: RoundRobin
websocket:
  protocol: ws
  host: 127.0.0.1
  port: %d
  advertise: %s
  push_listen: %s
retention:
  history_days: 365
  file_days: 365
metrics:
  listen: 127.0.0.1:%d
`, name, n.in.dir, n.in.apiPort, n.in.wsPort, n.advertise, n.pushAddr, freePort(t)) + d.backends
	if err := os.WriteFile(n.in.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Secrets never live in the file.
	n.in.env = []string{
		"SANDCAT_COMPONENT=" + role,
		"SANDCAT_SERVER_JWT_SECRET=" + d.secret,
		"SANDCAT_OSS_SECRET_KEY=" + d.minio.SecretKey,
	}
	return n
}

// start spawns the api, gateways and msgservers at once and waits until
// the deployment serves: every instance passing in Consul, the api ready,
// and the Kafka partitions shared by the msgservers.
func (d *deployment) start(gateways, msgservers int) {
	t := d.t
	t.Helper()
	began := time.Now()
	d.api = d.newNode("api", "api")
	for i := range gateways {
		d.gws = append(d.gws, d.newNode(fmt.Sprintf("gateway-%d", i+1), "gateway"))
	}
	for i := range msgservers {
		d.mss = append(d.mss, d.newNode(fmt.Sprintf("msgserver-%d", i+1), "msgserver"))
	}
	for _, n := range d.nodes() {
		n.p = n.in.spawn()
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range d.nodes() {
				t.Logf("---- %s (%s) stderr tail:\n%s", n.name, n.role, n.p.log.tail(40))
			}
		}
	})

	d.waitPassing(discovery.ServiceGateway, gateways)
	d.waitPassing(discovery.ServiceGatewayPush, gateways)
	d.waitPassing(discovery.ServiceMsgServer, msgservers)
	d.waitPassing(discovery.ServiceAPI, 1)
	registered := time.Since(began)
	d.waitReady()
	for _, g := range d.gws {
		d.waitUntil(g.p, "gateway "+g.name+" /health", func() error { return httpOK(g.wsBase() + "/health") })
	}
	ready := time.Since(began)
	d.waitAssigned(d.mss)
	all := time.Since(began)
	t.Logf("start-up: every instance passing in consul after %v, api ready after %v, the %d partitions shared by the msgservers after %v",
		registered.Round(time.Millisecond), ready.Round(time.Millisecond), d.partitions, all.Round(time.Millisecond))
}

func (d *deployment) nodes() []*node {
	return slices.Concat([]*node{d.api}, d.gws, d.mss)
}

// waitUntil polls check until it passes; it fails the test after waitDeploy
// or when p exits.
func (d *deployment) waitUntil(p *proc, what string, check func() error) {
	t := d.t
	t.Helper()
	deadline := time.Now().Add(waitDeploy)
	for {
		err := check()
		if err == nil {
			return
		}
		if p != nil {
			select {
			case <-p.exited:
				t.Fatalf("%s: the process exited (%v)\n%s", what, p.err, p.log.tail(40))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, waitDeploy, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *deployment) waitReady() {
	d.t.Helper()
	d.waitUntil(d.api.p, "api /ready", func() error { return httpOK(d.api.in.apiBase() + "/ready") })
}

func httpOK(u string) error {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, b)
	}
	return nil
}

// passing returns the passing instances of service in Consul.
func (d *deployment) passing(service string) ([]*consul.ServiceEntry, error) {
	es, _, err := d.consul.Health().Service(service, "", true, nil)
	return es, err
}

// waitPassing waits until exactly n instances of service pass.
func (d *deployment) waitPassing(service string, n int) {
	d.t.Helper()
	d.waitUntil(nil, fmt.Sprintf("%d passing %s", n, service), func() error {
		es, err := d.passing(service)
		if err != nil {
			return err
		}
		if len(es) != n {
			return fmt.Errorf("%d passing", len(es))
		}
		return nil
	})
}

// catalog returns the ids of every registered instance of service, passing or not.
func (d *deployment) catalog(service string) map[string]bool {
	d.t.Helper()
	ss, _, err := d.consul.Catalog().Service(service, "", nil)
	if err != nil {
		d.t.Fatalf("consul catalog %s: %v", service, err)
	}
	out := map[string]bool{}
	for _, s := range ss {
		out[s.ServiceID] = true
	}
	return out
}

// gatewayID is the id under which a gateway writes its online routes: the
// gateway_id meta of its registration, found by its ws_addr.
func (d *deployment) gatewayID(g *node) string {
	d.t.Helper()
	es, err := d.passing(discovery.ServiceGateway)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, e := range es {
		if e.Service.Meta[discovery.MetaWSAddr] == g.wsAddr() {
			return e.Service.Meta[discovery.MetaGatewayID]
		}
	}
	d.t.Fatalf("no passing gateway registration has ws_addr %s", g.wsAddr())
	return ""
}

// route is the gateway id the online routes hold for a user's desktop.
func (d *deployment) route(ctx context.Context, userID string) string {
	v, err := d.rdb.Get(ctx, d.prefix+"route:"+userID+":0").Result()
	if err == redis.Nil {
		return ""
	}
	if err != nil {
		d.t.Fatalf("redis route of %s: %v", userID, err)
	}
	return v
}

// ---------------------------------------------------------------------------
// Kafka partition assignment, from the msgservers' logs.

// assignedLine is kafkabus's log line of a new generation's assignment.
var assignedLine = regexp.MustCompile(`msg="kafkabus: partitions assigned" .*generation=(\d+) .*partitions="?\[([0-9 ]*)\]"?`)

type assignment struct {
	generation int
	partitions []int
	at         int // line index in the log
}

// lastAssignment is the latest assignment a msgserver logged (generation -1: none).
func lastAssignment(p *proc) assignment {
	a := assignment{generation: -1}
	p.log.mu.Lock()
	lines := p.log.lines
	p.log.mu.Unlock()
	for i := len(lines) - 1; i >= 0; i-- {
		m := assignedLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		a.generation, _ = strconv.Atoi(m[1])
		a.at = i
		for _, f := range strings.Fields(m[2]) {
			n, _ := strconv.Atoi(f)
			a.partitions = append(a.partitions, n)
		}
		return a
	}
	return a
}

// waitAssigned waits until the msgservers ms hold every partition between
// them, in one generation, each exactly once.
func (d *deployment) waitAssigned(ms []*node) {
	d.t.Helper()
	d.waitUntil(nil, "every partition assigned", func() error {
		var as []assignment
		held := map[int]int{}
		for _, m := range ms {
			select {
			case <-m.p.exited:
				return fmt.Errorf("%s exited: %v", m.name, m.p.err)
			default:
			}
			a := lastAssignment(m.p)
			if a.generation < 0 {
				return fmt.Errorf("%s has no assignment yet", m.name)
			}
			if len(as) > 0 && a.generation != as[0].generation {
				return fmt.Errorf("generations differ: %d and %d", as[0].generation, a.generation)
			}
			as = append(as, a)
			for _, p := range a.partitions {
				held[p]++
			}
		}
		for p := range d.partitions {
			if held[p] != 1 {
				return fmt.Errorf("partition %d held %d times (%v)", p, held[p], as)
			}
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// Metrics

// scrape reads the Prometheus text at u into name → value (labels ignored:
// the gateway metrics have one series each).
func scrape(t *testing.T, u string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", u, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		v, err := strconv.ParseFloat(f[1], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}
