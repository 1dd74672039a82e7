package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// benchUser is an account the tool registered over HTTP.
type benchUser struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Password string `json:"password"`
	Refresh  string `json:"refresh"`
	Token    string `json:"-"` // the access token of this run
}

// fixture is what the scenarios need on a server: users and groups. It is
// kept in the state directory, so a later run against the same data reuses
// it (registration costs two argon2id hashes per user on the server).
type fixture struct {
	Tag         string            `json:"tag"`    // in the e-mail addresses, unique per fixture
	Secret      string            `json:"secret"` // server.jwt_secret of the seed ("" for an external server)
	Users       []benchUser       `json:"users"`
	Groups      map[string]string `json:"groups"` // member count → group id (owner Users[0], members Users[:n])
	RefreshedAt time.Time         `json:"refreshed_at"`
}

func loadFixture(path string) (*fixture, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fixture{Tag: randHex(4), Groups: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var fx fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if fx.Groups == nil {
		fx.Groups = map[string]string{}
	}
	return &fx, nil
}

func (fx *fixture) save(path string) error {
	b, err := json.Marshal(fx)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// codeSource gives the verification code mailed to an address.
type codeSource interface {
	Code(ctx context.Context, email string) (string, error)
}

// setupProgress reports a long setup step.
type setupProgress func(step string, done, total int)

// ensureUsers registers users until fx has n (POST /user/mail/send, the code
// from codes, POST /user, POST /user/login), par at a time.
func ensureUsers(ctx context.Context, h *client.HTTP, codes codeSource, fx *fixture, n, par int, prog setupProgress) error {
	have := len(fx.Users)
	if have >= n {
		return nil
	}
	users := make([]benchUser, n-have)
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		firstErr   error
	)
	for range max(par, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(users) || ctx.Err() != nil {
					return
				}
				u, err := registerUser(ctx, h, codes, fx.Tag, have+i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				users[i] = u
				if d := int(done.Add(1)); prog != nil && (d%50 == 0 || d == len(users)) {
					prog("register users", have+d, n)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fx.Users = append(fx.Users, users...)
	fx.RefreshedAt = time.Now()
	return nil
}

func registerUser(ctx context.Context, h *client.HTTP, codes codeSource, tag string, i int) (benchUser, error) {
	u := benchUser{Email: fmt.Sprintf("bench%06d.%s@sandcat.localhost", i, tag), Password: "bench-" + randHex(6)}
	if err := h.SendCode(ctx, u.Email); err != nil {
		return u, fmt.Errorf("register %s: %w", u.Email, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	code, err := codes.Code(cctx, u.Email)
	cancel()
	if err != nil {
		return u, err
	}
	reg, err := h.Register(ctx, client.RegisterRequest{Avatar: "avatar1.png", Name: "bench" + strconv.Itoa(i),
		Password: u.Password, Email: u.Email, Code: code})
	if err != nil {
		return u, fmt.Errorf("register %s: %w", u.Email, err)
	}
	u.ID = reg.ID
	lr, err := h.Login(ctx, u.Email, u.Password)
	if err != nil {
		return u, fmt.Errorf("login %s: %w", u.Email, err)
	}
	u.Refresh, u.Token = lr.RefreshToken, lr.Token
	return u, nil
}

// ensureTokens gives the first n users an access token of this run: from
// their refresh token (GET /user/refresh_token/{refresh}/false, no password
// hashing), or by logging in again when it expired. With rotate the refresh
// tokens are renewed too (they live 28 h).
func ensureTokens(ctx context.Context, h *client.HTTP, fx *fixture, n int, rotate bool, prog setupProgress) error {
	n = min(n, len(fx.Users))
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		firstErr   error
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				u := &fx.Users[i]
				err := refreshUser(ctx, h, u, rotate)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if d := int(done.Add(1)); prog != nil && (d%500 == 0 || d == n) {
					prog("tokens", d, n)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && rotate {
		fx.RefreshedAt = time.Now()
	}
	return firstErr
}

func refreshUser(ctx context.Context, h *client.HTTP, u *benchUser, rotate bool) error {
	if u.Token != "" && !rotate {
		return nil
	}
	tok, err := h.Refresh(ctx, u.Refresh, false)
	if err == nil && rotate {
		var r string
		if r, err = h.Refresh(ctx, u.Refresh, true); err == nil {
			u.Refresh = r
		}
	}
	if err != nil {
		if client.StatusOf(err) != http.StatusUnauthorized {
			return fmt.Errorf("refresh %s: %w", u.Email, err)
		}
		lr, lerr := h.Login(ctx, u.Email, u.Password)
		if lerr != nil {
			return fmt.Errorf("login %s: %w", u.Email, lerr)
		}
		u.Refresh, tok = lr.RefreshToken, lr.Token
	}
	u.Token = tok
	return nil
}

// groupChunk is how many members one create or invite adds. The notice of
// each invite lists the new members and is stored once per member, so the
// setup of an n-member group writes about 29·n²/2 bytes to the inbox
// whatever the chunk (1.45 GB for 10,000): see BENCHMARKS.md.
const groupChunk = 1000

// ensureGroup creates the group of the first size users (owner Users[0])
// over HTTP, unless fx has it.
func ensureGroup(ctx context.Context, h *client.HTTP, fx *fixture, size int, prog setupProgress) (string, error) {
	key := strconv.Itoa(size)
	if gid := fx.Groups[key]; gid != "" {
		return gid, nil
	}
	if size > len(fx.Users) || size < 2 {
		return "", fmt.Errorf("group of %d needs %d users, have %d", size, size, len(fx.Users))
	}
	owner := fx.Users[0]
	oh := h.WithToken(owner.Token)
	ids := make([]string, size)
	for i := range size {
		ids[i] = fx.Users[i].ID
	}
	first := min(size, 500)
	inv, err := oh.CreateGroup(ctx, owner.ID, "bench-"+key, "avatar1.png", ids[1:first])
	if err != nil {
		return "", fmt.Errorf("create group of %d: %w", size, err)
	}
	gid := inv.Info.ID
	for lo := first; lo < size; lo += groupChunk {
		hi := min(lo+groupChunk, size)
		body := map[string]any{"user_id": owner.ID, "group_id": gid, "members": ids[lo:hi]}
		if err := oh.Call(ctx, http.MethodPut, "/group/invite", body, nil); err != nil {
			return "", fmt.Errorf("invite members %d-%d to the group of %d: %w", lo, hi, size, err)
		}
		if prog != nil {
			prog(fmt.Sprintf("group of %d", size), hi, size)
		}
	}
	fx.Groups[key] = gid
	return gid, nil
}

// waitRecvSeq waits until u's recv seq reaches at least want (the consumer
// has processed everything published before the message that gave it).
func waitRecvSeq(ctx context.Context, h *client.HTTP, u benchUser, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	uh := h.WithToken(u.Token)
	for {
		s, err := uh.Seq(ctx, u.ID)
		if err == nil && s.Seq >= want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("recv seq of %s is %d, want %d after %s", u.ID, s.Seq, want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cleanSeedInbox empties the inbox of a stopped seed (the setup notices of
// the groups) and compacts the file, so every run starts from users and
// groups only. It uses the store's own retention (Inbox.Clean).
func cleanSeedInbox(ctx context.Context, dbPath string, log *slog.Logger) error {
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	n, err := st.Inbox().Clean(ctx, time.Now().Add(24*time.Hour).UnixMilli(), nil)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("clean the seed inbox: %w", err)
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("vacuum the seed: %w", err)
	}
	log.Info("seed inbox cleaned", "entries", n)
	return nil
}

// copyDir copies the regular files of src into dst (created).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
}
