// Package auth issues and verifies Sandcat's JWTs (with durable revocation),
// hashes passwords with argon2id, and keeps e-mail verification codes.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Token lifetimes and verification leeway of the wire (sandcat-wire.md §2.0).
const (
	AccessTTL  = 4 * time.Hour
	RefreshTTL = AccessTTL + 24*time.Hour
	Leeway     = 60 * time.Second
)

var (
	// ErrInvalidToken is a token that does not verify (signature, alg, expiry, claims).
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrRevoked is a valid token issued at or before the user's last logout.
	ErrRevoked = errors.New("auth: token revoked")
)

// Revocations keeps the per-user revocation mark (storage.Users implements it).
type Revocations interface {
	RevokeTokens(ctx context.Context, userID string, at int64) error
	TokensRevokedAt(ctx context.Context, userID string) (int64, error)
}

// Tokens issues and verifies HS256 JWTs whose claims are exactly {sub, exp, iat}
// (sub = user id, times in unix seconds). The payload is built so that its
// base64url text has no '-' or '_': the client decodes it with the standard
// alphabet (sandcat-wire.md §9).
type Tokens struct {
	key []byte
	rev Revocations
	now func() time.Time
}

// NewTokens returns Tokens signing with secret. now may be nil (time.Now).
func NewTokens(secret []byte, rev Revocations, now func() time.Time) (*Tokens, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth: empty jwt secret")
	}
	if rev == nil {
		return nil, errors.New("auth: nil revocation store")
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{key: append([]byte(nil), secret...), rev: rev, now: now}, nil
}

// jwtHeader is the base64url of {"alg":"HS256","typ":"JWT"}.
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// Issue returns a new token for userID: an access token (exp = iat+4h) or,
// with refresh, a refresh token (exp = iat+28h). iat is never at or before
// the user's revocation mark, so a login right after a logout gets a valid token.
func (t *Tokens) Issue(ctx context.Context, userID string, refresh bool) (string, error) {
	if userID == "" || !utf8.ValidString(userID) {
		return "", fmt.Errorf("auth: issue: invalid subject %q", userID)
	}
	revoked, err := t.rev.TokensRevokedAt(ctx, userID)
	if err != nil {
		return "", fmt.Errorf("auth: issue: %w", err)
	}
	iat := max(t.now().Unix(), revoked+1)
	ttl := AccessTTL
	if refresh {
		ttl = RefreshTTL
	}
	return t.sign(userID, iat+int64(ttl/time.Second), iat), nil
}

// IssuePair returns an access and a refresh token for userID.
func (t *Tokens) IssuePair(ctx context.Context, userID string) (access, refresh string, err error) {
	if access, err = t.Issue(ctx, userID, false); err != nil {
		return "", "", err
	}
	if refresh, err = t.Issue(ctx, userID, true); err != nil {
		return "", "", err
	}
	return access, refresh, nil
}

func (t *Tokens) sign(sub string, exp, iat int64) string {
	signing := jwtHeader + "." + StdSafePayload(sub, exp, iat)
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks token (HS256 only, exp required, 60 s leeway, iat required
// and after the user's revocation mark) and returns its subject, the user id.
// It implements httpx.TokenVerifier.
func (t *Tokens) Verify(ctx context.Context, token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(t.now))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" || claims.IssuedAt == nil {
		return "", fmt.Errorf("%w: missing sub or iat", ErrInvalidToken)
	}
	revoked, err := t.rev.TokensRevokedAt(ctx, claims.Subject)
	if err != nil {
		return "", fmt.Errorf("auth: verify: %w", err)
	}
	if claims.IssuedAt.Unix() <= revoked {
		return "", ErrRevoked
	}
	return claims.Subject, nil
}

// Revoke revokes every token of userID issued so far (logout). The mark is
// max(now, previous mark+1): tokens issued after the previous mark carry
// iat >= previous mark+1, so they are covered too.
func (t *Tokens) Revoke(ctx context.Context, userID string) error {
	prev, err := t.rev.TokensRevokedAt(ctx, userID)
	if err != nil {
		return fmt.Errorf("auth: revoke: %w", err)
	}
	if err := t.rev.RevokeTokens(ctx, userID, max(t.now().Unix(), prev+1)); err != nil {
		return fmt.Errorf("auth: revoke: %w", err)
	}
	return nil
}

// StdSafePayload returns the base64url JWT payload of {"sub","exp","iat"} whose
// text has neither '-' nor '_', so that it also decodes with the standard
// alphabet without padding (base64.RawStdEncoding) to the same bytes.
//
// For ASCII JSON only the bytes '>', '?', '~' and DEL, when they fall on the
// third byte of a 3-byte group, encode to '-' or '_'; other ASCII bytes never
// do, non-ASCII bytes may. The payload is searched over a few placements of
// insignificant whitespace (which move the subject across groups); when none
// fits, every risky character of the subject is written as a \uXXXX escape,
// which makes the payload safe at any placement.
func StdSafePayload(sub string, exp, iat int64) string {
	plain := jsonQuote(sub, false)
	nums := `,"exp":` + strconv.FormatInt(exp, 10) + `,"iat":` + strconv.FormatInt(iat, 10) + "}"
	// Spaces after '{', after `"sub":` and after the subject, fewest first.
	for total := 0; total <= 6; total++ {
		for a := 0; a <= 2; a++ {
			for b := 0; b <= 2; b++ {
				c := total - a - b
				if c < 0 || c > 2 {
					continue
				}
				p := "{" + spaces(a) + `"sub":` + spaces(b) + plain + spaces(c) + nums
				if enc := base64.RawURLEncoding.EncodeToString([]byte(p)); stdSafe(enc) {
					return enc
				}
			}
		}
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"sub":` + jsonQuote(sub, true) + nums))
}

func spaces(n int) string { return strings.Repeat(" ", n) }

func stdSafe(enc string) bool { return !strings.ContainsAny(enc, "-_") }

// jsonQuote quotes s as a JSON string. Quotes, backslashes, control
// characters and <, >, & are escaped; with escapeRisky also '?', '~', DEL
// and every non-ASCII rune, so that the result is std-base64 safe.
func jsonQuote(s string, escapeRisky bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r < 0x20 || r == '"' || r == '\\' || r == '<' || r == '>' || r == '&',
			escapeRisky && (r == '?' || r == '~' || r >= 0x7f):
			if r > 0xffff {
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
