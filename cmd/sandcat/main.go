// Command sandcat is the Sandcat IM server: one binary for every role.
//
//	sandcat [-p config.yml] [run]          run the roles of `component` (default all)
//	sandcat [-p config.yml] migrate        apply the database migrations and exit
//	sandcat appservice registration [...]  write a Matrix appservice registration
//	sandcat probe URL                      exit 0 if GET URL answers 2xx (health checks)
//	sandcat version                        print the version
//
// With no config file (or one without backend sections) everything runs in one
// process on embedded storage under ./data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sandcat-im/sandcat/im/app"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/observe"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// probe GETs one URL and reports whether it answered 2xx within 5 s.
func probe(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sandcat probe URL")
		return 2
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(stderr, args[0], resp.Status)
		return 1
	}
	return 0
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandcat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	fs.StringVar(&path, "p", "", "path of the config file (default ./config.yml if present)")
	fs.StringVar(&path, "configuration", "", "same as -p")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sandcat [-p config.yml] [run|migrate|version|appservice registration]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmd := "run"
	if fs.NArg() > 0 {
		cmd = fs.Arg(0)
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, "sandcat", version)
		return 0
	}
	if cmd == "probe" { // container health checks: the image has no curl
		return probe(fs.Args()[1:], stderr)
	}
	if cmd == "appservice" { // needs no config: it writes the config section
		return writeRegistration(fs.Args()[1:], stdout, stderr)
	}
	mustExist := path != ""
	if path == "" {
		path = "config.yml"
	}
	cfg, err := config.Load(path, mustExist, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, closer, err := observe.NewLogger(cfg.Log.Level, cfg.Log.Output)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer closer.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "run":
		err = app.Run(ctx, cfg, log, version)
	case "migrate":
		err = app.Migrate(ctx, cfg, log)
	default:
		fs.Usage()
		return 2
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("sandcat stopped", "err", err)
		return 1
	}
	return 0
}
