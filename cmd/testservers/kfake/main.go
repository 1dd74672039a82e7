// Command kfake runs a one-broker Kafka-protocol cluster (franz-go's kfake)
// for Sandcat's tests. Topics are created on first use with -partitions
// partitions. With -datadir the cluster's state survives a restart (stop it
// with SIGTERM, start it again with the same -datadir and port). It prints
// the broker address (host:port) on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address of the broker (port 0 picks a free port)")
	port := flag.Int("port", -1, "broker port; overrides the port of -listen when >= 0")
	partitions := flag.Int("partitions", 1, "partitions of auto-created topics")
	dataDir := flag.String("datadir", "", "persist the cluster's state in this directory (empty: memory only)")
	syncWrites := flag.Bool("sync", false, "fsync every produced batch")
	logLevel := flag.String("log-level", "warn", "log level: none, error, warn, info, debug")
	flag.Parse()

	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	p, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("-listen port: %w", err)
	}
	if *port >= 0 {
		p = *port
	}
	if *partitions < 1 {
		return fmt.Errorf("-partitions must be at least 1")
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(p),
		// kfake always asks for 127.0.0.1:PORT; honour the host of -listen.
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, pp, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, pp))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return fmt.Errorf("expected one broker, got %v", addrs)
	}
	fmt.Println(addrs[0])

	<-sig
	c.Close() // with -datadir this writes the state to disk
	return nil
}

func parseLevel(s string) (kfake.LogLevel, error) {
	switch s {
	case "none":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return 0, fmt.Errorf("-log-level: unknown level %q", s)
}
