// Package account serves the /user routes of the wire (sandcat-wire.md §2.1):
// e-mail codes, registration, login, token refresh, logout, profile read and
// update, password change, exact user search, and OAuth2 login with GitHub and
// Google.
package account

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/storage"
)

// Lifetimes of verification codes and OAuth states.
const (
	CodeTTL  = 5 * time.Minute
	StateTTL = 10 * time.Minute
)

// DefaultSeqStep is the sequence step when Options.SeqStep is 0 (as the original).
const DefaultSeqStep = 5000

// DefaultAvatar is the avatar of users who register without one, or whose
// OAuth avatar cannot be imported.
const DefaultAvatar = "avatar1.png"

// Users is the user store (storage.Users implements it).
type Users interface {
	CreateUser(ctx context.Context, u *storage.User, seqStep int64) error
	GetUser(ctx context.Context, id string) (*storage.User, error)
	UserByLogin(ctx context.Context, login string) (*storage.User, error)
	UserByEmail(ctx context.Context, email string) (*storage.User, error)
	UpdateUser(ctx context.Context, u *storage.UserUpdate, now int64) (*storage.User, error)
	SetUserPassword(ctx context.Context, id, hash, salt string) error
	SearchUser(ctx context.Context, callerID, pattern string) (*storage.UserWithMatchType, error)
	SetUserRegion(ctx context.Context, id, region string) error
}

// Tokens issues, verifies and revokes JWTs (*auth.Tokens implements it).
type Tokens interface {
	Issue(ctx context.Context, userID string, refresh bool) (string, error)
	Verify(ctx context.Context, token string) (userID string, err error)
	Revoke(ctx context.Context, userID string) error
}

// Codes keeps single-use codes per key (auth.MemoryCodes and auth.RedisCodes
// implement it); Take fails with auth.ErrCodeExpired or auth.ErrCodeInvalid.
type Codes interface {
	Put(ctx context.Context, key, code string, ttl time.Duration) error
	Take(ctx context.Context, key, code string) error
}

// Mailer sends a verification code to an e-mail address.
type Mailer interface {
	SendCode(ctx context.Context, email, code string) error
}

// AvatarStore stores an imported avatar in the avatar bucket under name.
type AvatarStore interface {
	PutAvatar(ctx context.Context, name, contentType string, r io.Reader) error
}

// OAuthProvider configures one OAuth2 client (config server.oauth2.{github,google}).
// Empty URLs take the provider's public defaults; an empty ClientID disables
// the provider (its routes answer 404).
type OAuthProvider struct {
	ClientID     string
	ClientSecret string
	AuthURL      string
	TokenURL     string
	RedirectURL  string
	UserInfoURL  string
	EmailURL     string // GitHub only: the e-mail list endpoint
}

// Options are the dependencies of the handlers.
type Options struct {
	Users  Users  // required
	Tokens Tokens // required
	Codes  Codes  // required: e-mail verification codes, keyed by e-mail
	States Codes  // required when an OAuth provider is enabled: OAuth states
	Mailer Mailer // required
	// WSAddr picks the WebSocket address returned at login ("ws://host:port/ws"). Required.
	WSAddr func(ctx context.Context) (string, error)
	// Region maps a client IP to a region name ("" when unknown); optional.
	Region func(ctx context.Context, ip string) string
	// Avatars receives imported OAuth avatars; optional (DefaultAvatar is used without it).
	Avatars AvatarStore
	// SeqStep is the initial send/recv seq ceiling of a new user. 0 (what
	// Sandcat passes) starts the ceilings at 0, so a new user's seqs start at 1:
	// the allocator raises a ceiling before it hands out a seq above it. The
	// original server stored its step here; negative means DefaultSeqStep.
	SeqStep int64
	// GitHub and Google OAuth2 clients; nil disables the provider.
	GitHub *OAuthProvider
	Google *OAuthProvider
	// HTTPClient calls the OAuth providers and downloads avatars (a client
	// with a 15 s timeout if nil).
	HTTPClient    *http.Client
	Log           *slog.Logger     // slog.Default() if nil
	Now           func() time.Time // time.Now if nil
	DefaultAvatar string           // DefaultAvatar if empty
}

// Handlers serves the /user routes.
type Handlers struct {
	users         Users
	tokens        Tokens
	codes         Codes
	states        Codes
	mailer        Mailer
	wsAddr        func(ctx context.Context) (string, error)
	region        func(ctx context.Context, ip string) string
	avatars       AvatarStore
	seqStep       int64
	github        *oauthProvider
	google        *oauthProvider
	client        *http.Client
	log           *slog.Logger
	now           func() time.Time
	defaultAvatar string
}

// New checks the options and returns the handlers.
func New(o Options) (*Handlers, error) {
	switch {
	case o.Users == nil:
		return nil, errors.New("account: Options.Users is nil")
	case o.Tokens == nil:
		return nil, errors.New("account: Options.Tokens is nil")
	case o.Codes == nil:
		return nil, errors.New("account: Options.Codes is nil")
	case o.Mailer == nil:
		return nil, errors.New("account: Options.Mailer is nil")
	case o.WSAddr == nil:
		return nil, errors.New("account: Options.WSAddr is nil")
	}
	h := &Handlers{
		users: o.Users, tokens: o.Tokens, codes: o.Codes, states: o.States, mailer: o.Mailer,
		wsAddr: o.WSAddr, region: o.Region, avatars: o.Avatars, seqStep: o.SeqStep,
		client: o.HTTPClient, log: o.Log, now: o.Now, defaultAvatar: o.DefaultAvatar,
		github: newGitHub(o.GitHub), google: newGoogle(o.Google),
	}
	if (h.github != nil || h.google != nil) && h.states == nil {
		return nil, errors.New("account: Options.States is nil but an OAuth provider is enabled")
	}
	if h.seqStep < 0 {
		h.seqStep = DefaultSeqStep
	}
	if h.client == nil {
		h.client = &http.Client{Timeout: 15 * time.Second}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.defaultAvatar == "" {
		h.defaultAvatar = DefaultAvatar
	}
	return h, nil
}

// Register mounts every /user route on r, both at /user/... and at
// /api/user/... (the web client's prefix).
func (h *Handlers) Register(r *mux.Router) {
	for _, prefix := range []string{"/user", "/api/user"} {
		h.mount(r, prefix)
	}
}

func (h *Handlers) mount(r *mux.Router, base string) {
	open := func(method, path string, fn func(http.ResponseWriter, *http.Request) error) {
		r.Handle(base+path, httpx.Handler{Log: h.log, Fn: fn}).Methods(method)
	}
	authed := func(method, path string, fn func(http.ResponseWriter, *http.Request) error) {
		r.Handle(base+path, httpx.RequireUser(h.tokens, h.log)(httpx.Handler{Log: h.log, Fn: fn})).Methods(method)
	}
	open(http.MethodPost, "/mail/send", h.sendCode)
	open(http.MethodPost, "", h.register)
	open(http.MethodPost, "/login", h.login)
	open(http.MethodGet, "/refresh_token/{token}/{is_refresh}", h.refresh)
	open(http.MethodPut, "/pwd", h.changePassword)
	authed(http.MethodPut, "", h.update)
	authed(http.MethodDelete, "/logout/{uuid}", h.logout)
	authed(http.MethodGet, "/{user_id}/search/{pattern}", h.search)
	for _, route := range []struct {
		name string
		p    *oauthProvider
	}{{"github", h.github}, {"google", h.google}, {"wechat", h.google}} {
		open(http.MethodGet, "/auth/"+route.name, h.oauthStart(route.name, route.p))
		open(http.MethodGet, "/auth/"+route.name+"/callback", h.oauthCallback(route.name, route.p))
	}
	authed(http.MethodGet, "/{id}", h.get)
}
