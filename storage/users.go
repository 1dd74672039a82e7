package storage

import "context"

// User is a row of the users table and the wire's User JSON (sandcat-wire.md §2.1).
// Optional fields are pointers and encode as null when absent; the password
// hash, its salt and the deletion flag are never serialised.
type User struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Account    string  `json:"account"`
	Password   string  `json:"-"` // argon2id PHC string; empty for users created through OAuth
	Salt       string  `json:"-"`
	Avatar     string  `json:"avatar"` // object name in the avatar bucket
	Gender     string  `json:"gender"`
	Age        int32   `json:"age"`
	Phone      *string `json:"phone"`
	Email      *string `json:"email"`
	Address    *string `json:"address"`
	Region     *string `json:"region"`
	Birthday   *int64  `json:"birthday"`
	CreateTime int64   `json:"create_time"` // unix ms
	UpdateTime int64   `json:"update_time"` // unix ms
	Signature  string  `json:"signature"`
	IsDelete   bool    `json:"-"`
}

// UserUpdate is the body of PUT /user. Empty strings, nil pointers and a zero
// birthday keep the stored value (the original's COALESCE semantics).
type UserUpdate struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Avatar    string  `json:"avatar"`
	Gender    string  `json:"gender"`
	Phone     *string `json:"phone"`
	Email     *string `json:"email"`
	Address   *string `json:"address"`
	Region    *string `json:"region"`
	Birthday  *int64  `json:"birthday"`
	Signature *string `json:"signature"`
}

// Values of UserWithMatchType.MatchType.
const (
	MatchPhone   = "phone"
	MatchEmail   = "email"
	MatchAccount = "account"
)

// UserWithMatchType is the answer of the exact user search (GET /user/:id/search/:pattern).
type UserWithMatchType struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Account   string  `json:"account"`
	Avatar    string  `json:"avatar"`
	Gender    string  `json:"gender"`
	Age       int32   `json:"age"`
	Email     *string `json:"email"`
	Region    *string `json:"region"`
	Birthday  *int64  `json:"birthday"`
	MatchType *string `json:"match_type"`
	Signature string  `json:"signature"`
	IsFriend  bool    `json:"is_friend"`
}

// Users keeps user accounts and the durable token-revocation mark of each user.
// Deleted users (is_delete) are invisible to every lookup.
type Users interface {
	// CreateUser inserts u and its sequence row (send_max_seq = rec_max_seq =
	// seqStep, the durable seq ceilings: 0 lets the allocator start at 1) in
	// one transaction. CreateTime/UpdateTime are set to now when
	// zero. It returns ErrConflict when a visible user already has u's account
	// or u's e-mail.
	CreateUser(ctx context.Context, u *User, seqStep int64) error
	// GetUser returns the user with that id, or ErrNotFound.
	GetUser(ctx context.Context, id string) (*User, error)
	// UserByLogin returns the user whose account, phone or e-mail equals login
	// (an account match wins over an e-mail match over a phone match), or ErrNotFound.
	UserByLogin(ctx context.Context, login string) (*User, error)
	// UserByEmail returns the user with that e-mail, or ErrNotFound.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UpdateUser applies u (COALESCE semantics, see UserUpdate), sets
	// update_time = now (unix ms) and returns the updated user. ErrNotFound
	// for an unknown id, ErrConflict when the new e-mail belongs to another user.
	UpdateUser(ctx context.Context, u *UserUpdate, now int64) (*User, error)
	// SetUserPassword stores a new password hash and salt; ErrNotFound for an unknown id.
	SetUserPassword(ctx context.Context, id, hash, salt string) error
	// SearchUser finds another user (not callerID) whose e-mail, phone or
	// account equals pattern exactly; ErrNotFound when none does.
	SearchUser(ctx context.Context, callerID, pattern string) (*UserWithMatchType, error)
	// SetUserRegion stores the region derived from the login address.
	SetUserRegion(ctx context.Context, id, region string) error
	// RevokeTokens marks every token of the user issued at or before at (unix
	// seconds) as revoked. The mark only moves forward.
	RevokeTokens(ctx context.Context, userID string, at int64) error
	// TokensRevokedAt returns the user's revocation mark (unix seconds), 0 if none.
	TokensRevokedAt(ctx context.Context, userID string) (int64, error)
}
