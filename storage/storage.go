// Package storage declares what Sandcat keeps and the small per-concern
// interfaces it keeps it behind. Each interface has an embedded implementation
// (storage/sqlite) and a production one (storage/postgres, MongoDB, ...); one
// conformance suite per interface (storage/storagetest) runs against all of them.
package storage

import "errors"

var (
	// ErrNotFound means the row asked for does not exist (or is not visible to the caller).
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict means a uniqueness rule was broken (e.g. an e-mail already used).
	ErrConflict = errors.New("storage: conflict")
)
