package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// FerretDB is a running FerretDB (MongoDB wire protocol, SQLite storage).
type FerretDB struct {
	*Server
	// URI is the MongoDB connection string, e.g. mongodb://127.0.0.1:PORT/.
	// It stays the same across Stop and Start.
	URI string
}

// RunFerretDB starts a FerretDB with an empty data directory and returns
// its handle; t.Cleanup stops it.
func RunFerretDB(t testing.TB) *FerretDB {
	t.Helper()
	f := &FerretDB{Server: newServer(t, "ferretdb")}
	listen := "127.0.0.1:0"
	data := filepath.Join(f.dir, "data")
	f.args = func() []string { return []string{"-listen", listen, "-dir", data} }
	f.ready = func(ctx context.Context, p *process) error {
		uri, err := firstLine(ctx, p)
		if err != nil {
			return err
		}
		u, err := url.Parse(uri)
		if err != nil || u.Scheme != "mongodb" || u.Host == "" {
			return fmt.Errorf("unexpected URI %q on stdout", uri)
		}
		if err := poll(ctx, p, dialCheck(u.Host)); err != nil {
			return err
		}
		f.URI, listen = uri, u.Host
		return nil
	}
	f.Start(t)
	return f
}

// StartFerretDB starts a FerretDB and returns its MongoDB URI.
func StartFerretDB(t testing.TB) (uri string) {
	t.Helper()
	return RunFerretDB(t).URI
}

// Kafka is a running one-broker Kafka-protocol cluster (kfake) that creates
// topics on first use. Its state is kept in its data directory across Stop
// and Start (a graceful Stop writes it; Kill may lose the latest writes).
type Kafka struct {
	*Server
	// Brokers are the bootstrap addresses; they stay the same across Stop
	// and Start.
	Brokers []string
}

// RunKafka starts a kfake broker whose auto-created topics have partitions
// partitions and returns its handle; t.Cleanup stops it.
func RunKafka(t testing.TB, partitions int) *Kafka {
	t.Helper()
	k := &Kafka{Server: newServer(t, "kfake")}
	listen := "127.0.0.1:0"
	data := filepath.Join(k.dir, "data")
	k.args = func() []string {
		return []string{"-listen", listen, "-partitions", strconv.Itoa(partitions), "-datadir", data}
	}
	k.ready = func(ctx context.Context, p *process) error {
		addr, err := firstLine(ctx, p)
		if err != nil {
			return err
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("unexpected broker address %q on stdout: %w", addr, err)
		}
		if err := poll(ctx, p, dialCheck(addr)); err != nil {
			return err
		}
		k.Brokers, listen = []string{addr}, addr
		return nil
	}
	k.Start(t)
	return k
}

// StartKafka starts a kfake broker (see RunKafka) and returns its
// bootstrap addresses.
func StartKafka(t testing.TB, partitions int) (brokers []string) {
	t.Helper()
	return RunKafka(t, partitions).Brokers
}

// MinIO is a running MinIO server (S3 API) with a single drive.
type MinIO struct {
	*Server
	// Endpoint is host:port of the S3 API (plain HTTP).
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
}

// RunMinIO starts a MinIO server with an empty drive and random root
// credentials and returns its handle; t.Cleanup stops it.
func RunMinIO(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{Server: newServer(t, "minio")}
	m.AccessKey = "sandcat-" + rand.Text()[:8]
	m.SecretKey = rand.Text()
	m.env = []string{
		"MINIO_ROOT_USER=" + m.AccessKey,
		"MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	}
	var console string
	m.pick = func() error {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		m.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		console = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		return nil
	}
	m.args = func() []string {
		return []string{"server", filepath.Join(m.dir, "data"),
			"--address", m.Endpoint, "--console-address", console,
			"--certs-dir", filepath.Join(m.dir, "certs"), "--quiet"}
	}
	m.ready = func(ctx context.Context, p *process) error {
		return poll(ctx, p, httpCheck("http://"+m.Endpoint+"/minio/health/ready", func([]byte) error { return nil }))
	}
	m.Start(t)
	return m
}

// StartMinIO starts a MinIO server (see RunMinIO) and returns its S3
// endpoint (host:port, plain HTTP) and root credentials.
func StartMinIO(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	m := RunMinIO(t)
	return m.Endpoint, m.AccessKey, m.SecretKey
}

// Consul is a running single-node Consul agent in dev mode (server, state
// in memory: a restart starts empty).
type Consul struct {
	*Server
	// HTTPAddr is host:port of the HTTP API.
	HTTPAddr string
}

// RunConsul starts `consul agent -dev` on free loopback ports (DNS, gRPC
// and WAN gossip disabled) and returns once it has elected itself leader
// and registered its node; t.Cleanup stops it.
func RunConsul(t testing.TB) *Consul {
	t.Helper()
	c := &Consul{Server: newServer(t, "consul")}
	var server, serfLAN int
	c.pick = func() error {
		ports, err := freePorts(3)
		if err != nil {
			return err
		}
		c.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		server, serfLAN = ports[1], ports[2]
		return nil
	}
	c.args = func() []string {
		_, httpPort, _ := net.SplitHostPort(c.HTTPAddr)
		return []string{"agent", "-dev",
			"-node", "sandcat-test",
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", httpPort,
			"-server-port", strconv.Itoa(server),
			"-serf-lan-port", strconv.Itoa(serfLAN),
			"-serf-wan-port", "-1",
			"-dns-port", "-1",
			"-grpc-port", "-1",
			"-grpc-tls-port", "-1",
			"-log-level", "info",
			"-hcl", "disable_update_check = true",
		}
	}
	c.ready = func(ctx context.Context, p *process) error {
		base := "http://" + c.HTTPAddr
		leader := httpCheck(base+"/v1/status/leader", func(body []byte) error {
			var addr string
			if err := json.Unmarshal(body, &addr); err != nil {
				return fmt.Errorf("leader: %w", err)
			}
			if addr == "" {
				return errors.New("no leader yet")
			}
			return nil
		})
		node := httpCheck(base+"/v1/catalog/nodes", func(body []byte) error {
			var nodes []json.RawMessage
			if err := json.Unmarshal(body, &nodes); err != nil {
				return fmt.Errorf("catalog nodes: %w", err)
			}
			if len(nodes) == 0 {
				return errors.New("node not in the catalog yet")
			}
			return nil
		})
		return poll(ctx, p, func(ctx context.Context) error {
			if err := leader(ctx); err != nil {
				return err
			}
			return node(ctx)
		})
	}
	c.Start(t)
	return c
}

// StartConsul starts a dev-mode Consul agent (see RunConsul) and returns
// the host:port of its HTTP API.
func StartConsul(t testing.TB) (httpAddr string) {
	t.Helper()
	return RunConsul(t).HTTPAddr
}

// httpCheck returns a check that GETs url and passes when the status is
// 200 and accept approves the body.
func httpCheck(url string, accept func(body []byte) error) func(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return accept(body)
	}
}
