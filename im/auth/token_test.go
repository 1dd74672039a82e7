package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
)

// memRevocations is an in-memory Revocations for these unit tests (the
// storage implementations have their own conformance suite).
type memRevocations struct {
	mu sync.Mutex
	at map[string]int64
}

func (m *memRevocations) RevokeTokens(_ context.Context, id string, at int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at == nil {
		m.at = map[string]int64{}
	}
	m.at[id] = max(m.at[id], at)
	return nil
}

func (m *memRevocations) TokensRevokedAt(_ context.Context, id string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.at[id], nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestTokens(t *testing.T, secret string) (*Tokens, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	tk, err := NewTokens([]byte(secret), &memRevocations{}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return tk, c
}

// payloadClaims decodes the payload the way the client does: standard
// alphabet, no padding.
func payloadClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", token, len(parts))
	}
	raw, err := base64.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload %q does not decode with RawStdEncoding: %v", parts[1], err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("payload %q: %v", raw, err)
	}
	return m
}

func TestIssueClaims(t *testing.T) {
	tk, c := newTestTokens(t, "secret")
	id := ids.New()
	for _, tc := range []struct {
		refresh bool
		ttl     int64
	}{{false, 4 * 3600}, {true, 28 * 3600}} {
		tok, err := tk.Issue(context.Background(), id, tc.refresh)
		if err != nil {
			t.Fatal(err)
		}
		if h := strings.Split(tok, ".")[0]; h != jwtHeader {
			t.Fatalf("header %q", h)
		}
		m := payloadClaims(t, tok)
		if len(m) != 3 {
			t.Fatalf("claims %v, want exactly sub, exp, iat", m)
		}
		iat := c.t.Unix()
		if m["sub"] != id || m["iat"] != float64(iat) || m["exp"] != float64(iat+tc.ttl) {
			t.Fatalf("refresh=%v: claims %v", tc.refresh, m)
		}
		got, err := tk.Verify(context.Background(), tok)
		if err != nil || got != id {
			t.Fatalf("Verify = %q, %v", got, err)
		}
	}
}

// randomSubject returns a nanoid, or a string with the characters that make
// base64url emit '-' or '_' ('~', '?', '>'), quotes, control and non-ASCII runes.
func randomSubject(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return ids.New()
	}
	alphabet := []rune("~?>?~ab_-O\"\\\n\x7féü€😀/+=<&")
	n := 1 + r.IntN(30)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestPayloadStdBase64SafeAndVerifies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := &clock{}
	tk, err := NewTokens([]byte("k"), &memRevocations{}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	var withSpaces, withEscapes int
	for i := range 5000 {
		sub := randomSubject(r)
		c.t = time.Unix(1_500_000_000+r.Int64N(2_000_000_000), 0)
		tok, err := tk.Issue(context.Background(), sub, r.IntN(2) == 0)
		if err != nil {
			t.Fatalf("#%d Issue(%q): %v", i, sub, err)
		}
		payload := strings.Split(tok, ".")[1]
		if strings.ContainsAny(payload, "-_") {
			t.Fatalf("#%d sub %q: payload %q has '-' or '_'", i, sub, payload)
		}
		raw, _ := base64.RawStdEncoding.DecodeString(payload)
		if strings.Contains(string(raw), " ") {
			withSpaces++
		}
		if strings.Contains(string(raw), `\u007e`) || strings.Contains(string(raw), `\u003f`) {
			withEscapes++
		}
		m := payloadClaims(t, tok)
		if m["sub"] != sub || m["iat"] != float64(c.t.Unix()) || len(m) != 3 {
			t.Fatalf("#%d sub %q: claims %v", i, sub, m)
		}
		got, err := tk.Verify(context.Background(), tok)
		if err != nil || got != sub {
			t.Fatalf("#%d sub %q: Verify = %q, %v", i, sub, got, err)
		}
		// jwt/v5 on its own accepts it too.
		parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("k"), nil },
			jwt.WithTimeFunc(c.now), jwt.WithValidMethods([]string{"HS256"}))
		if err != nil || !parsed.Valid {
			t.Fatalf("#%d: jwt.Parse: %v", i, err)
		}
	}
	// Both fallbacks were exercised.
	if withSpaces < 100 || withEscapes < 100 {
		t.Fatalf("payloads with whitespace: %d, with escapes: %d", withSpaces, withEscapes)
	}
	t.Logf("payloads with whitespace: %d, with escapes: %d", withSpaces, withEscapes)
}

func TestStdSafePayloadStrategies(t *testing.T) {
	tests := []struct {
		name, sub    string
		wantSpaces   bool
		wantEscapes  bool
		wantExactRaw string // when set, the payload must decode to exactly this
	}{
		{name: "nanoid is plain", sub: "V1StGXR8_Z5jdHi6B-myT",
			wantExactRaw: `{"sub":"V1StGXR8_Z5jdHi6B-myT","exp":1800014400,"iat":1800000000}`},
		{name: "risky char fixed by whitespace", sub: "~", wantSpaces: true},
		{name: "risky chars at every alignment need escapes", sub: "~~~", wantEscapes: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := StdSafePayload(tc.sub, 1800014400, 1800000000)
			if strings.ContainsAny(enc, "-_") {
				t.Fatalf("payload %q not std-safe", enc)
			}
			raw, err := base64.RawStdEncoding.DecodeString(enc)
			if err != nil {
				t.Fatal(err)
			}
			s := string(raw)
			if tc.wantExactRaw != "" && s != tc.wantExactRaw {
				t.Fatalf("payload %s, want %s", s, tc.wantExactRaw)
			}
			if got := strings.Contains(s, " "); got != tc.wantSpaces {
				t.Fatalf("payload %s: spaces=%v, want %v", s, got, tc.wantSpaces)
			}
			if got := strings.Contains(s, `\u`); got != tc.wantEscapes {
				t.Fatalf("payload %s: escapes=%v, want %v", s, got, tc.wantEscapes)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil || m["sub"] != tc.sub {
				t.Fatalf("payload %s: %v %v", s, m, err)
			}
		})
	}
}

func signWith(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	tk, c := newTestTokens(t, "secret")
	now := c.t.Unix()
	good := jwt.MapClaims{"sub": "u1", "iat": now, "exp": now + 100}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"HS256 same secret", signWith(t, jwt.SigningMethodHS256, []byte("secret"), good), true},
		{"expired inside the 60 s leeway", signWith(t, jwt.SigningMethodHS256, []byte("secret"),
			jwt.MapClaims{"sub": "u1", "iat": now - 1000, "exp": now - 50}), true},
		{"expired beyond the leeway", signWith(t, jwt.SigningMethodHS256, []byte("secret"),
			jwt.MapClaims{"sub": "u1", "iat": now - 1000, "exp": now - 61}), false},
		{"other secret", signWith(t, jwt.SigningMethodHS256, []byte("other"), good), false},
		{"HS512 same secret", signWith(t, jwt.SigningMethodHS512, []byte("secret"), good), false},
		{"alg none", signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), false},
		{"no exp", signWith(t, jwt.SigningMethodHS256, []byte("secret"), jwt.MapClaims{"sub": "u1", "iat": now}), false},
		{"no iat", signWith(t, jwt.SigningMethodHS256, []byte("secret"), jwt.MapClaims{"sub": "u1", "exp": now + 100}), false},
		{"no sub", signWith(t, jwt.SigningMethodHS256, []byte("secret"), jwt.MapClaims{"iat": now, "exp": now + 100}), false},
		{"garbage", "a.b.c", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tk.Verify(context.Background(), tc.token)
			if tc.ok && (err != nil || id != "u1") {
				t.Fatalf("Verify = %q, %v; want u1", id, err)
			}
			if !tc.ok && (err == nil || !errors.Is(err, ErrInvalidToken)) {
				t.Fatalf("Verify = %q, %v; want ErrInvalidToken", id, err)
			}
		})
	}
}

func TestRevocation(t *testing.T) {
	ctx := context.Background()
	tk, c := newTestTokens(t, "secret")
	a, b := ids.New(), ids.New()
	oldA, _ := tk.Issue(ctx, a, false)
	oldRefreshA, _ := tk.Issue(ctx, a, true)
	tokB, _ := tk.Issue(ctx, b, false)

	if err := tk.Revoke(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{oldA, oldRefreshA} {
		if _, err := tk.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
			t.Fatalf("token issued before logout: %v, want ErrRevoked", err)
		}
	}
	if id, err := tk.Verify(ctx, tokB); err != nil || id != b {
		t.Fatalf("other user's token: %q, %v", id, err)
	}
	// A login in the same second as the logout gets a valid token.
	newA, err := tk.Issue(ctx, a, false)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tk.Verify(ctx, newA); err != nil || id != a {
		t.Fatalf("token issued right after logout: %q, %v", id, err)
	}
	// A second logout in that same second revokes it as well.
	if err := tk.Revoke(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Verify(ctx, newA); !errors.Is(err, ErrRevoked) {
		t.Fatalf("second logout in the same second: %v, want ErrRevoked", err)
	}
	third, _ := tk.Issue(ctx, a, false)
	c.t = c.t.Add(time.Hour)
	if id, err := tk.Verify(ctx, third); err != nil || id != a {
		t.Fatalf("token after the second logout: %q, %v", id, err)
	}
}

func TestNewTokensValidates(t *testing.T) {
	if _, err := NewTokens(nil, &memRevocations{}, nil); err == nil {
		t.Fatal("empty secret accepted")
	}
	if _, err := NewTokens([]byte("x"), nil, nil); err == nil {
		t.Fatal("nil revocations accepted")
	}
	tk, _ := newTestTokens(t, "x")
	if _, err := tk.Issue(context.Background(), "", false); err == nil {
		t.Fatal("empty subject accepted")
	}
	if _, err := tk.Issue(context.Background(), "bad\xff", false); err == nil {
		t.Fatal("invalid UTF-8 subject accepted")
	}
}

var _ httpx.TokenVerifier = (*Tokens)(nil)
