package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

var (
	// ErrCodeExpired means no code is stored for the key (never sent, expired, used or burnt).
	ErrCodeExpired = errors.New("auth: verification code expired or missing")
	// ErrCodeInvalid means a code is stored for the key but it is another one.
	ErrCodeInvalid = errors.New("auth: verification code invalid")
)

// DefaultMaxAttempts is how many wrong codes burn the stored one.
const DefaultMaxAttempts = 5

// Codes keeps short-lived single-use codes, one per key (an e-mail address
// for verification codes, a state for OAuth), each with its own TTL (the
// original kept all codes in one hash sharing one TTL: bug B8). After
// DefaultMaxAttempts wrong codes the stored one is deleted.
type Codes interface {
	// Put stores code for key for ttl, replacing any previous code of key.
	Put(ctx context.Context, key, code string, ttl time.Duration) error
	// Check verifies code without consuming it: nil, ErrCodeExpired or ErrCodeInvalid.
	Check(ctx context.Context, key, code string) error
	// Take verifies code and deletes it when it matches (atomically: a code is taken once).
	Take(ctx context.Context, key, code string) error
}

// NewCode returns a random 6-digit verification code (100000–999999).
func NewCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(900000))
	if err != nil {
		return "", fmt.Errorf("auth: new code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()+100000), nil
}

// MemoryCodes is Codes in this process's memory (one-process deployments, tests).
type MemoryCodes struct {
	now         func() time.Time
	maxAttempts int

	mu        sync.Mutex
	codes     map[string]memoryCode
	lastSweep time.Time
}

type memoryCode struct {
	code    string
	expires time.Time
	tries   int
}

var _ Codes = (*MemoryCodes)(nil)

// NewMemoryCodes returns an empty MemoryCodes; now may be nil (time.Now).
func NewMemoryCodes(now func() time.Time) *MemoryCodes {
	if now == nil {
		now = time.Now
	}
	return &MemoryCodes{now: now, maxAttempts: DefaultMaxAttempts, codes: make(map[string]memoryCode)}
}

// Put implements Codes.
func (m *MemoryCodes) Put(_ context.Context, key, code string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("auth: put code: ttl %v", ttl)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > time.Minute {
		for k, c := range m.codes {
			if !now.Before(c.expires) {
				delete(m.codes, k)
			}
		}
		m.lastSweep = now
	}
	m.codes[key] = memoryCode{code: code, expires: now.Add(ttl)}
	return nil
}

// Check implements Codes.
func (m *MemoryCodes) Check(_ context.Context, key, code string) error {
	return m.verify(key, code, false)
}

// Take implements Codes.
func (m *MemoryCodes) Take(_ context.Context, key, code string) error {
	return m.verify(key, code, true)
}

func (m *MemoryCodes) verify(key, code string, take bool) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.codes[key]
	if !ok || !now.Before(c.expires) {
		delete(m.codes, key)
		return ErrCodeExpired
	}
	if subtle.ConstantTimeCompare([]byte(c.code), []byte(code)) != 1 {
		c.tries++
		if c.tries >= m.maxAttempts {
			delete(m.codes, key)
		} else {
			m.codes[key] = c
		}
		return ErrCodeInvalid
	}
	if take {
		delete(m.codes, key)
	}
	return nil
}
