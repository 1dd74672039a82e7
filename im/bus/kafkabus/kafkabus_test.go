package kafkabus_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/bus/bustest"
	"github.com/sandcat-im/sandcat/im/bus/kafkabus"
	"github.com/sandcat-im/sandcat/im/bus/localbus"
	"github.com/sandcat-im/sandcat/im/testsvc"
)

// testLogger discards the bus's logs unless KAFKABUS_TEST_LOG is set (they
// may be written after a test ended, by goroutines kafka-go does not wait
// for, so they cannot go to t.Log).
func testLogger() *slog.Logger {
	if os.Getenv("KAFKABUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func topicName(prefix string) string { return prefix + "-" + strings.ToLower(rand.Text()[:10]) }

// testConfig is a configuration with quick retries for tests.
func testConfig(brokers []string, topic string, partitions int) kafkabus.Config {
	return kafkabus.Config{
		Brokers:    brokers,
		Topic:      topic,
		Partitions: partitions,
		Producer: kafkabus.ProducerConfig{
			MaxRetry:      200,
			RetryInterval: 50 * time.Millisecond,
		},
		Consumer: kafkabus.ConsumerConfig{
			SessionTimeout:    6 * time.Second, // the broker's minimum
			HeartbeatInterval: 500 * time.Millisecond,
			MinBackoff:        5 * time.Millisecond,
			MaxBackoff:        50 * time.Millisecond,
			MaxAttempts:       1000,
		},
		ConnectTimeout: 20 * time.Second,
		Logger:         testLogger(),
	}
}

func openBus(t testing.TB, cfg kafkabus.Config) *kafkabus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := kafkabus.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// cfgBus is a Bus with the configuration it was opened with, for Reopen.
type cfgBus struct {
	*kafkabus.Bus
	cfg kafkabus.Config
}

func TestConformance(t *testing.T) {
	brokers := testsvc.StartKafka(t, 4)
	open := func(t *testing.T, cfg kafkabus.Config) cfgBus {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b, err := kafkabus.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return cfgBus{b, cfg}
	}
	bustest.Run(t, bustest.Harness{
		Open: func(t *testing.T) bustest.Bus {
			return open(t, testConfig(brokers, topicName("conformance"), 4))
		},
		Reopen: func(t *testing.T, b bustest.Bus) bustest.Bus {
			cb := b.(cfgBus)
			if err := cb.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, cb.cfg)
		},
	})
}

func TestOpenValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  kafkabus.Config
		want string
	}{
		{"no brokers", kafkabus.Config{}, "no brokers"},
		{"bad acks", kafkabus.Config{Brokers: []string{"127.0.0.1:1"}, Producer: kafkabus.ProducerConfig{Acks: "most"}}, "acks"},
		{"bad offset reset", kafkabus.Config{Brokers: []string{"127.0.0.1:1"}, Consumer: kafkabus.ConsumerConfig{AutoOffsetReset: "middle"}}, "auto_offset_reset"},
		{"dead letters to main topic", kafkabus.Config{Brokers: []string{"127.0.0.1:1"}, Topic: "t", DeadLetterTopic: "t"}, "dead-letter"},
		{"unreachable broker", kafkabus.Config{Brokers: []string{"127.0.0.1:1"}, ConnectTimeout: 300 * time.Millisecond, Logger: testLogger()}, "not ready"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := kafkabus.Open(context.Background(), tc.cfg)
			if err == nil {
				_ = b.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestOpenCreatesTopics(t *testing.T) {
	brokers := testsvc.StartKafka(t, 1) // auto-created topics would have 1 partition
	topic := topicName("create")
	b := openBus(t, testConfig(brokers, topic, 6))
	if b.Partitions() != 6 || b.Topic() != topic || b.DeadLetterTopic() != topic+".dlq" {
		t.Fatalf("partitions %d, topic %q, dead-letter topic %q", b.Partitions(), b.Topic(), b.DeadLetterTopic())
	}
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, name := range []string{topic, topic + ".dlq"} {
		parts, err := conn.ReadPartitions(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != 6 {
			t.Fatalf("topic %s has %d partitions, want 6", name, len(parts))
		}
	}
	// A second process finds the topics there and uses them.
	other := openBus(t, testConfig(brokers, topic, 6))
	if other.Partitions() != 6 {
		t.Fatalf("second Open: %d partitions", other.Partitions())
	}
}

// keysForPartitions returns one key per partition of b.
func keysForPartitions(t *testing.T, b *kafkabus.Bus, prefix string) []string {
	t.Helper()
	keys := make([]string, b.Partitions())
	found := 0
	for i := 0; found < len(keys); i++ {
		if i > 100000 {
			t.Fatal("no key found for some partition")
		}
		k := prefix + strconv.Itoa(i)
		if p := b.PartitionOf(k); keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

type delivery struct {
	who int
	rec bus.Record
}

// TestGroupSplitsPartitions runs two members of one group (each with its
// own client, as two processes): each gets some of the partitions, every key
// stays on one member, and together they handle every record once, per key
// in order.
func TestGroupSplitsPartitions(t *testing.T) {
	brokers := testsvc.StartKafka(t, 4)
	cfg := testConfig(brokers, topicName("split"), 4)
	pub := openBus(t, cfg)
	got := make(chan delivery, 100000)
	for who := 1; who <= 2; who++ {
		m := openBus(t, cfg)
		bustest.Consume(t, m, "split", func(_ context.Context, recs []bus.Record) error {
			for _, r := range recs {
				got <- delivery{who, r}
			}
			return nil
		})
	}

	// Warm up until both members have partitions: one probe per partition
	// per round, until a round reaches both.
	probes := keysForPartitions(t, pub, "probe-")
	deadline := time.Now().Add(bustest.Wait)
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			t.Fatal("the two members never shared the partitions")
		}
		val := "round-" + strconv.Itoa(round)
		for _, k := range probes {
			if err := pub.Publish(context.Background(), k, []byte(val)); err != nil {
				t.Fatal(err)
			}
		}
		members := map[int]bool{}
		for n := 0; n < len(probes); {
			d := recvDelivery(t, got)
			if string(d.rec.Value) == val {
				members[d.who] = true
				n++
			}
		}
		if len(members) == 2 {
			break
		}
	}

	// Main phase: 40 conversations, 25 records each, published concurrently.
	const keys, per = 40, 25
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			bustest.PublishN(t, pub, "conv-"+strconv.Itoa(k), 0, per)
		})
	}
	wg.Wait()
	// An end marker per partition: records of a partition arrive in order,
	// so any duplicate of a main-phase record arrives before its marker.
	for _, k := range probes {
		if err := pub.Publish(context.Background(), k, []byte("end")); err != nil {
			t.Fatal(err)
		}
	}
	next := map[string]int{}
	owner := map[string]int{}
	perMember := map[int]int{}
	for ends := 0; ends < len(probes); {
		d := recvDelivery(t, got)
		r := d.rec
		if strings.HasPrefix(r.Key, "probe-") {
			if string(r.Value) == "end" {
				ends++
			}
			continue
		}
		if string(r.Value) != strconv.Itoa(next[r.Key]) {
			t.Fatalf("key %s: got %q, want %d (duplicate or order broken)", r.Key, r.Value, next[r.Key])
		}
		next[r.Key]++
		if o, ok := owner[r.Key]; ok && o != d.who {
			t.Fatalf("key %s handled by both members", r.Key)
		}
		owner[r.Key] = d.who
		perMember[d.who]++
	}
	for k := range keys {
		if n := next["conv-"+strconv.Itoa(k)]; n != per {
			t.Fatalf("conv-%d: %d records handled, want %d", k, n, per)
		}
	}
	if perMember[1] == 0 || perMember[2] == 0 {
		t.Fatalf("records per member: %v; want both members to handle some", perMember)
	}
	t.Logf("records per member: %v", perMember)
}

func recvDelivery(t *testing.T, ch <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(bustest.Wait):
		t.Fatal("no record delivered")
	}
	return delivery{}
}

// TestKilledConsumerRecordsRedelivered runs a member in a child process that
// accepts its first batch and then hangs in the handler; the child is killed
// with SIGKILL. The other member gets the partition when the child's session
// expires and handles everything after the committed batch, marked
// Redelivered, and nothing before it.
func TestKilledConsumerRecordsRedelivered(t *testing.T) {
	if os.Getenv("KAFKABUS_CHILD") != "" {
		t.Skip("child")
	}
	brokers := testsvc.StartKafka(t, 1)
	topic := topicName("killed")
	cfg := testConfig(brokers, topic, 1)
	pub := openBus(t, cfg)
	bustest.PublishN(t, pub, "k", 0, 5)

	cmd := exec.Command(os.Args[0], "-test.run=^TestChildConsumer$", "-test.v")
	cmd.Env = append(os.Environ(), "KAFKABUS_CHILD="+strings.Join(brokers, ",")+"|"+topic)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	line := func(prefix string) []string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before printing %q", prefix)
				}
				if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
					return strings.Fields(rest)
				}
			case <-time.After(bustest.Wait):
				t.Fatalf("child did not print %q", prefix)
			}
		}
	}
	accepted := line("accepted")
	bustest.PublishN(t, pub, "k", 5, 10) // the child's second batch, which it never finishes
	hung := line("hung")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	from := len(accepted)
	if fmt.Sprint(accepted) != fmt.Sprint(seq(0, from)) || len(hung) == 0 || hung[0] != strconv.Itoa(from) {
		t.Fatalf("child accepted %v, then hung on %v", accepted, hung)
	}

	got := bustest.NewSink(100)
	bustest.Consume(t, openBus(t, cfg), "killed", got.Handle)
	for i := from; i < 10; i++ {
		r := got.Recv(t)
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("after the kill: got %q, want %d (the child committed up to %d)", r.Value, i, from)
		}
		if !r.Redelivered {
			t.Fatalf("record %d not marked redelivered", i)
		}
	}
}

// TestChildConsumer is the child of TestKilledConsumerRecordsRedelivered: it
// accepts its first batch, prints it, then prints the second batch and hangs.
func TestChildConsumer(t *testing.T) {
	env := os.Getenv("KAFKABUS_CHILD")
	if env == "" {
		t.Skip("only run as the child of TestKilledConsumerRecordsRedelivered")
	}
	brokers, topic, _ := strings.Cut(env, "|")
	b := openBus(t, testConfig(strings.Split(brokers, ","), topic, 1))
	calls := 0
	err := b.Consume(context.Background(), "killed", func(ctx context.Context, recs []bus.Record) error {
		calls++
		vals := make([]string, len(recs))
		for i, r := range recs {
			vals[i] = string(r.Value)
		}
		if calls == 1 {
			fmt.Println("accepted " + strings.Join(vals, " "))
			return nil
		}
		fmt.Println("hung " + strings.Join(vals, " "))
		<-ctx.Done()
		return ctx.Err()
	})
	t.Fatalf("consume: %v", err)
}

func seq(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

// logCapture is a slog handler that keeps every record and signals waiters.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
	wake chan struct{}
	also slog.Handler // testLogger's
}

func newLogCapture() *logCapture {
	return &logCapture{wake: make(chan struct{}), also: testLogger().Handler()}
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	if l.also.Enabled(context.Background(), r.Level) {
		_ = l.also.Handle(context.Background(), r)
	}
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

// wait returns the first record with message msg, waiting for it.
func (l *logCapture) wait(t *testing.T, msg string) slog.Record {
	t.Helper()
	deadline := time.After(bustest.Wait)
	for {
		l.mu.Lock()
		for _, r := range l.recs {
			if r.Message == msg {
				l.mu.Unlock()
				return r
			}
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no log line %q", msg)
		}
	}
}

// TestBrokerRestart restarts the broker under a running producer and
// consumer: a Publish issued while the broker is down succeeds once it is
// back, and the consumer resumes.
func TestBrokerRestart(t *testing.T) {
	k := testsvc.RunKafka(t, 2)
	cfg := testConfig(k.Brokers, topicName("restart"), 2)
	logs := newLogCapture()
	cfg.Logger = slog.New(logs)
	b := openBus(t, cfg)
	got := bustest.NewSink(1000)
	bustest.Consume(t, b, "restart", got.Handle)
	keys := keysForPartitions(t, b, "k")

	check := newFirstSeen()
	publishAll := func(from, to int) {
		for _, key := range keys {
			bustest.PublishN(t, b, key, from, to)
		}
	}
	receive := func(to int) {
		t.Helper()
		for !check.complete(keys, to) {
			if err := check.add(got.Recv(t)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishAll(0, 10)
	receive(10)

	k.Restart(t)
	publishAll(10, 20)
	receive(20)

	// Down while publishing: Publish retries until the broker is back.
	k.Stop(t)
	done := make(chan error, 1)
	go func() { done <- b.Publish(context.Background(), keys[0], []byte("20")) }()
	logs.wait(t, "kafkabus: produce failed, retrying")
	k.Start(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish across the broker restart: %v", err)
		}
	case <-time.After(bustest.Wait):
		t.Fatal("publish did not return after the broker came back")
	}
	for _, key := range keys[1:] {
		bustest.PublishN(t, b, key, 20, 21)
	}
	receive(21)
	// Commits work again: the group's position reaches the end of the log.
	waitCommitted(t, k.Brokers, "restart", cfg.Topic, 2)
}

// waitCommitted waits until group's committed offset in each partition of
// topic is the partition's end offset.
func waitCommitted(t *testing.T, brokers []string, group, topic string, partitions int) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	deadline := time.Now().Add(bustest.Wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var reqs []kafka.OffsetRequest
		for _, id := range ids {
			reqs = append(reqs, kafka.LastOffsetOf(id))
		}
		ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		var done bool
		var state string
		if err == nil {
			var committed *kafka.OffsetFetchResponse
			committed, err = client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
			if err == nil {
				end := map[int]int64{}
				for _, p := range ends.Topics[topic] {
					end[p.Partition] = p.LastOffset
				}
				done = len(committed.Topics[topic]) == partitions
				for _, p := range committed.Topics[topic] {
					done = done && p.CommittedOffset == end[p.Partition]
					state += fmt.Sprintf(" p%d committed %d end %d;", p.Partition, p.CommittedOffset, end[p.Partition])
				}
			}
		}
		cancel()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never committed up to the end of %s: err %v,%s", group, topic, err, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstSeen checks per-key order of first deliveries: a record delivered
// again must be marked Redelivered and be one already seen.
type firstSeen struct{ next map[string]int }

func newFirstSeen() *firstSeen { return &firstSeen{next: map[string]int{}} }

func (f *firstSeen) add(r bus.Record) error {
	v, err := strconv.Atoi(string(r.Value))
	if err != nil {
		return fmt.Errorf("value %q: %w", r.Value, err)
	}
	switch n := f.next[r.Key]; {
	case v == n:
		f.next[r.Key]++
	case v < n:
		if !r.Redelivered {
			return fmt.Errorf("key %s: %d delivered again without Redelivered", r.Key, v)
		}
	default:
		return fmt.Errorf("key %s: got %d before %d (lost or out of order)", r.Key, v, n)
	}
	return nil
}

func (f *firstSeen) complete(keys []string, to int) bool {
	for _, k := range keys {
		if f.next[k] < to {
			return false
		}
	}
	return true
}

// counters is a Metrics.
type counters struct {
	published, consumed, retried, deadLettered atomic.Int64
}

func (c *counters) Published(n int)              { c.published.Add(int64(n)) }
func (c *counters) Consumed(_ string, n int)     { c.consumed.Add(int64(n)) }
func (c *counters) Retried(_ string, n int)      { c.retried.Add(int64(n)) }
func (c *counters) DeadLettered(_ string, n int) { c.deadLettered.Add(int64(n)) }

// TestPoisonRecordDeadLettered: a record the handler always fails on goes
// to the dead-letter topic with its headers after MaxAttempts, with an
// Error log line and a metric; the records around it are handled once, in
// order, and the group's position moves past it.
func TestPoisonRecordDeadLettered(t *testing.T) {
	brokers := testsvc.StartKafka(t, 1)
	topic := topicName("poison")
	cfg := testConfig(brokers, topic, 1)
	cfg.Consumer.MaxAttempts = 3
	logs := newLogCapture()
	cfg.Logger = slog.New(logs)
	var m counters
	cfg.Metrics = &m
	b := openBus(t, cfg)

	bustest.PublishN(t, b, "k", 0, 5)
	if err := b.Publish(context.Background(), "k", []byte("poison")); err != nil {
		t.Fatal(err)
	}
	bustest.PublishN(t, b, "k", 5, 10)

	var mu sync.Mutex
	var accepted []string
	done := make(chan struct{})
	c := bustest.Consume(t, b, "poison", func(_ context.Context, recs []bus.Record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if string(r.Value) == "poison" {
				return errors.New("cannot handle poison")
			}
		}
		for _, r := range recs {
			accepted = append(accepted, string(r.Value))
		}
		if len(accepted) == 10 {
			close(done)
		}
		return nil
	})
	select {
	case <-done:
	case <-time.After(bustest.Wait):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("accepted only %v", accepted)
	}
	if fmt.Sprint(accepted) != fmt.Sprint(seq(0, 10)) {
		t.Fatalf("accepted %v", accepted)
	}

	line := logs.wait(t, "kafkabus: poison record moved to the dead-letter topic")
	if line.Level != slog.LevelError {
		t.Fatalf("dead-letter log line at level %v", line.Level)
	}
	if m.deadLettered.Load() != 1 || m.consumed.Load() != 10 || m.retried.Load() == 0 || m.published.Load() != 11 {
		t.Fatalf("metrics: dead-lettered %d consumed %d retried %d published %d",
			m.deadLettered.Load(), m.consumed.Load(), m.retried.Load(), m.published.Load())
	}

	// The dead-letter topic has the record with its provenance.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: b.DeadLetterTopic(), Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Wait)
	defer cancel()
	dl, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read dead-letter topic: %v", err)
	}
	h := map[string]string{}
	for _, x := range dl.Headers {
		h[x.Key] = string(x.Value)
	}
	want := map[string]string{
		kafkabus.HeaderTopic:     topic,
		kafkabus.HeaderPartition: "0",
		kafkabus.HeaderOffset:    "5",
		kafkabus.HeaderGroup:     "poison",
		kafkabus.HeaderAttempts:  "3",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if !strings.Contains(h[kafkabus.HeaderError], "cannot handle poison") || h[kafkabus.HeaderTime] == "" {
		t.Errorf("headers %v", h)
	}
	if string(dl.Key) != "k" || string(dl.Value) != "poison" {
		t.Errorf("dead letter %q=%q", dl.Key, dl.Value)
	}

	// The group's position is past the poison record: a new member starts
	// with the next record.
	if err := c.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	bustest.PublishN(t, b, "k", 10, 11)
	got := bustest.NewSink(10)
	bustest.Consume(t, openBus(t, cfg), "poison", got.Handle)
	if r := got.Recv(t); string(r.Value) != "10" {
		t.Fatalf("after the poison record the group resumed at %q, want 10", r.Value)
	}
}

// TestHandlerRunsPerPartitionConcurrently checks that a slow partition does
// not hold the others: a handler blocked on one partition's record does
// not stop another partition's records.
func TestHandlerRunsPerPartitionConcurrently(t *testing.T) {
	brokers := testsvc.StartKafka(t, 2)
	b := openBus(t, testConfig(brokers, topicName("parallel"), 2))
	keys := keysForPartitions(t, b, "p")
	release := make(chan struct{})
	got := bustest.NewSink(10)
	bustest.Consume(t, b, "parallel", func(ctx context.Context, recs []bus.Record) error {
		for _, r := range recs {
			if r.Key == keys[0] {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return got.Handle(ctx, recs)
	})
	if err := b.Publish(context.Background(), keys[0], []byte("0")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), keys[1], []byte("0")); err != nil {
		t.Fatal(err)
	}
	if r := got.Recv(t); r.Key != keys[1] {
		t.Fatalf("got key %q first, want the unblocked partition's %q", r.Key, keys[1])
	}
	close(release)
	if r := got.Recv(t); r.Key != keys[0] {
		t.Fatalf("got key %q, want %q", r.Key, keys[0])
	}
}

// BenchmarkPublish compares Publish on the embedded bus and on Kafka
// (kfake, 8 partitions), in the same run: from 64 goroutines per GOMAXPROCS
// (parallel) and from one (serial, the latency of one durable publish).
func BenchmarkPublish(b *testing.B) {
	brokers := testsvc.StartKafka(b, 8)
	buses := []struct {
		name string
		open func(b *testing.B) bus.Publisher
	}{
		{"localbus", func(b *testing.B) bus.Publisher {
			l, err := localbus.Open(context.Background(), filepath.Join(b.TempDir(), "bus.db"),
				localbus.Options{RetentionInterval: -1, Logger: testLogger()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close() })
			return l
		}},
		{"kafkabus", func(b *testing.B) bus.Publisher {
			return openBus(b, testConfig(brokers, topicName("bench"), 8))
		}},
	}
	for _, mode := range []struct {
		name string
		run  func(*testing.B, bus.Publisher)
	}{{"parallel", bustest.BenchmarkPublish}, {"serial", bustest.BenchmarkPublishSerial}} {
		for _, bb := range buses {
			b.Run(mode.name+"/"+bb.name, func(b *testing.B) { mode.run(b, bb.open(b)) })
		}
	}
}
