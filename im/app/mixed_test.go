package app_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
)

// Any mix of backends works: each is chosen by its config section alone.
// The friends-and-chat scenario runs on PostgreSQL with the embedded bus,
// inbox and files, then with Redis added (seqs, caches, codes, routes).
func TestFriendsAndChatOnMixedBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis")
	}
	postgresYAML := func(t *testing.T) string {
		u, err := url.Parse(pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		port := u.Port()
		if port == "" {
			port = "5432"
		}
		return fmt.Sprintf("db:\n  postgres:\n    host: %s\n    port: %s\n    user: %s\n    database: %s\n",
			u.Hostname(), port, u.User.Username(), strings.TrimPrefix(u.Path, "/"))
	}
	redisYAML := func(t *testing.T) string {
		rdb, prefix := redistest.Client(t)
		host, port, _ := strings.Cut(redistest.Addr(), ":")
		t.Cleanup(func() { _ = redistest.DeletePrefix(context.Background(), rdb, prefix) })
		return fmt.Sprintf("redis:\n  host: %s\n  port: %s\n  prefix: %q\n  seq_step: 3\n", host, port, prefix)
	}
	cases := []struct {
		name string
		yaml func(t *testing.T) string
	}{
		{"postgres", postgresYAML},
		{"postgres+redis", func(t *testing.T) string { return postgresYAML(t) + redisYAML(t) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			friendsAndChat(t, startServerWith(t, t.TempDir(), tc.yaml(t), false))
		})
	}
}
