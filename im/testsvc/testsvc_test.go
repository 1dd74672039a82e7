package testsvc_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/sandcat-im/sandcat/im/testsvc"
)

// timeout bounds each test's client calls so that a wedged server fails
// the test instead of hanging it.
const timeout = 2 * time.Minute

func TestFerretDB(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	f := testsvc.RunFerretDB(t)
	if !strings.HasPrefix(f.URI, "mongodb://127.0.0.1:") {
		t.Fatalf("URI = %q, want mongodb://127.0.0.1:PORT/", f.URI)
	}

	connect := func() *mongo.Client {
		t.Helper()
		c, err := mongo.Connect(ctx, options.Client().ApplyURI(f.URI))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		if err := c.Ping(ctx, nil); err != nil {
			t.Fatalf("ping: %v", err)
		}
		return c
	}

	c := connect()
	coll := c.Database("sandcat").Collection("inbox")
	if _, err := coll.InsertOne(ctx, bson.M{"_id": "u1", "seq": 7}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	_, err := coll.InsertOne(ctx, bson.M{"_id": "u1", "seq": 8})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second insert with the same _id: err = %v, want a duplicate key error", err)
	}

	// The data directory survives a restart on the same address.
	f.Restart(t)
	coll = connect().Database("sandcat").Collection("inbox")
	var got struct {
		Seq int `bson:"seq"`
	}
	if err := coll.FindOne(ctx, bson.M{"_id": "u1"}).Decode(&got); err != nil {
		t.Fatalf("find after restart: %v", err)
	}
	if got.Seq != 7 {
		t.Fatalf("seq after restart = %d, want 7", got.Seq)
	}
}

func TestKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	const partitions = 3
	k := testsvc.RunKafka(t, partitions)
	const topic, group = "sandcat.msg", "msgserver"

	w := &kafka.Writer{
		Addr:                   kafka.TCP(k.Brokers...),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           10 * time.Millisecond,
	}
	var msgs []kafka.Message
	for i := range 6 {
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "user-%d", i), Value: fmt.Appendf(nil, "m%d", i)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	conn, err := kafka.DialContext(ctx, "tcp", k.Brokers[0])
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(parts) != partitions {
		t.Fatalf("topic has %d partitions, want %d", len(parts), partitions)
	}

	// read fetches n messages in group and commits them.
	read := func(n int) []string {
		t.Helper()
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: k.Brokers, GroupID: group, Topic: topic,
			MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset,
		})
		defer r.Close()
		var got []string
		for range n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("fetch after %v: %v", got, err)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("commit: %v", err)
			}
			got = append(got, string(m.Value))
		}
		return got
	}
	got := read(3)

	// Messages and committed offsets survive a restart on the same address.
	k.Restart(t)
	w = &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("user-6"), Value: []byte("m6")}); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	w.Close()
	got = append(got, read(4)...)

	slices.Sort(got)
	want := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6"}
	if !slices.Equal(got, want) {
		t.Fatalf("consumed %v across the restart, want each of %v once", got, want)
	}
}

func TestMinIO(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	endpoint, ak, sk := testsvc.StartMinIO(t)
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: false})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := c.MakeBucket(ctx, "sandcat", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	body := []byte("hello, sandcat")
	if _, err := c.PutObject(ctx, "sandcat", "a/b.txt", bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("put: %v", err)
	}
	obj, err := c.GetObject(ctx, "sandcat", "a/b.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("object = %q, want %q", got, body)
	}

	bad, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(ak, sk+"x", "")})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if _, err := bad.BucketExists(ctx, "sandcat"); err == nil {
		t.Fatal("a wrong secret key was accepted")
	}
}

func TestConsul(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addr := testsvc.StartConsul(t)
	c, err := consul.NewClient(&consul.Config{Address: addr})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	leader, err := c.Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("leader = %q, %v", leader, err)
	}

	if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "gateway-1", Name: "sandcat-gateway", Address: "127.0.0.1", Port: 50001,
		Check: &consul.AgentServiceCheck{TTL: "30s"},
	}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if err := c.Agent().UpdateTTL("service:gateway-1", "", consul.HealthPassing); err != nil {
		t.Fatalf("update TTL: %v", err)
	}
	// The agent syncs to the catalog asynchronously: wait with a blocking
	// query (bounded by ctx) until the passing instance shows up.
	var index uint64
	for {
		entries, meta, err := c.Health().Service("sandcat-gateway", "", true,
			(&consul.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second}).WithContext(ctx))
		if err != nil {
			t.Fatalf("health query: %v", err)
		}
		if len(entries) == 1 {
			if got := entries[0].Service.Port; got != 50001 {
				t.Fatalf("port = %d, want 50001", got)
			}
			break
		}
		index = meta.LastIndex
	}

	if _, err := c.KV().Put(&consul.KVPair{Key: "sandcat/gateway-1", Value: []byte("up")}, nil); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	kv, _, err := c.KV().Get("sandcat/gateway-1", nil)
	if err != nil || kv == nil || string(kv.Value) != "up" {
		t.Fatalf("kv get = %+v, %v", kv, err)
	}
}

// fatalRecorder records Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) { r.msg = fmt.Sprint(args...) }

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

func TestBinMissingNamesTheBuildCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(testsvc.EnvBinDir, dir)
	r := &fatalRecorder{TB: t}
	if got := testsvc.Bin(r, "kfake"); got != "" {
		t.Fatalf("Bin = %q for a missing binary", got)
	}
	for _, want := range []string{"cmd/testservers/build.sh", dir, "make testservers"} {
		if !strings.Contains(r.msg, want) {
			t.Errorf("failure message %q does not contain %q", r.msg, want)
		}
	}
}
