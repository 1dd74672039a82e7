package auth

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/alexedwards/argon2id"
)

// Argon2id parameters of the original server (the Rust argon2 crate defaults).
const (
	argonMemory      = 19456 // KiB
	argonIterations  = 2
	argonParallelism = 1
	argonSaltLength  = 16
	argonKeyLength   = 32
)

// ErrInvalidHash is a stored password hash that is not a usable argon2id PHC string.
var ErrInvalidHash = errors.New("auth: invalid password hash")

// HashPassword hashes password with argon2id and a fresh 16-byte salt. hash is
// the PHC string `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>` (raw standard
// base64), salt is its salt part, as the original server stored both.
func HashPassword(password string) (hash, salt string, err error) {
	hash, err = argon2id.CreateHash(password, &argon2id.Params{
		Memory: argonMemory, Iterations: argonIterations, Parallelism: argonParallelism,
		SaltLength: argonSaltLength, KeyLength: argonKeyLength,
	})
	if err != nil {
		return "", "", fmt.Errorf("auth: hash password: %w", err)
	}
	_, rawSalt, _, err := argon2id.DecodeHash(hash)
	if err != nil {
		return "", "", fmt.Errorf("auth: hash password: %w", err)
	}
	return hash, base64.RawStdEncoding.EncodeToString(rawSalt), nil
}

// CheckPassword reports whether password matches the PHC hash (hashes made by
// the original server verify too). An empty hash (a user created through
// OAuth) never matches and is not an error; a malformed one never matches and
// returns an error wrapping ErrInvalidHash, for the log.
func CheckPassword(password, hash string) (bool, error) {
	if hash == "" {
		return false, nil
	}
	p, _, key, err := argon2id.DecodeHash(hash)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	// Refuse parameters that would panic (p=0) or exhaust the machine.
	if p.Parallelism < 1 || p.Parallelism > 16 || p.Iterations < 1 || p.Iterations > 16 ||
		p.Memory < 8*uint32(p.Parallelism) || p.Memory > 256*1024 || len(key) < 16 || len(key) > 128 {
		return false, fmt.Errorf("%w: unsupported parameters m=%d t=%d p=%d keylen=%d",
			ErrInvalidHash, p.Memory, p.Iterations, p.Parallelism, len(key))
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	return ok, nil
}
