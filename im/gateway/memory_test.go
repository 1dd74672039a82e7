package gateway_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMeasureIdleConnectionMemory reports the server-side memory of idle
// connections (heap + goroutine stacks) with the clients in a child process.
// It is a measurement, not a check: run it with
//
//	SANDCAT_MEASURE_CONNS=5000 go test -run MeasureIdle -v ./im/gateway/
func TestMeasureIdleConnectionMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SANDCAT_MEASURE_CONNS"))
	if n <= 0 || os.Getenv("SANDCAT_MEASURE_CHILD") != "" {
		t.Skip("set SANDCAT_MEASURE_CONNS to measure")
	}
	s := newStack(t, stackOpts{})
	before := heapAndStacks()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsChild$", "-test.v")
	cmd.Env = append(os.Environ(), "SANDCAT_MEASURE_CHILD="+strings.TrimPrefix(s.srv.URL, "http://"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "ready") {
	}
	for s.gw.Stats().Connections < int64(n) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	after := heapAndStacks()
	t.Logf("%d idle connections: %.1f KiB each (heap+stacks %d → %d bytes)",
		n, float64(after-before)/float64(n)/1024, before, after)
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	t.Logf("of which goroutine stacks %.1f KiB, heap %.1f KiB",
		float64(ms1.StackInuse-ms0.StackInuse)/float64(n)/1024, float64(ms1.HeapInuse-ms0.HeapInuse)/float64(n)/1024)
	_ = stdin.Close()
	_ = cmd.Wait()
}

func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestIdleClientsChild is the child of TestMeasureIdleConnectionMemory: it
// opens SANDCAT_MEASURE_CONNS connections and holds them until stdin closes.
func TestIdleClientsChild(t *testing.T) {
	host := os.Getenv("SANDCAT_MEASURE_CHILD")
	if host == "" {
		t.Skip("child of TestMeasureIdleConnectionMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("SANDCAT_MEASURE_CONNS"))
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	conns := make([]*websocket.Conn, 0, n)
	for i := range n {
		u := fmt.Sprintf("u%d", i)
		c, _, err := d.Dial(fmt.Sprintf("ws://%s/ws/%s/conn/%s/0/tok-%s", host, u, u, u), nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		_ = c.Close()
	}
}
