// Package ids makes the identifiers of the wire: 21-character nanoids over the
// URL-safe alphabet, as the original server used for users, groups,
// friendships, server message ids and file names.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
)

const alphabet = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// Size is the length of an id.
const Size = 21

// New returns a random nanoid (126 bits of entropy).
func New() string {
	var b [Size]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	for i := range b {
		b[i] = alphabet[b[i]&63]
	}
	return string(b[:])
}

// FromKey returns the id that key always maps to: the nanoid alphabet over
// the first 126 bits of SHA-256(key). An idempotency key (e.g. a Matrix
// event id) gives the same message the same server_id on every retry.
func FromKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	var b [Size]byte
	for i := range b {
		b[i] = alphabet[sum[i]&63]
	}
	return string(b[:])
}
