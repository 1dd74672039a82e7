package account

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	netmail "net/mail"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
)

// Field limits (the PostgreSQL columns of the original schema, and sane caps).
const (
	maxEmail      = 64
	maxPhone      = 20
	maxText       = 1024 // address, region, signature
	maxName       = 128
	maxPassword   = 256
	maxSearch     = 32
	maxAvatarName = 128
)

// LoginResponse is the body of a successful login (and OAuth callback).
type LoginResponse struct {
	User         *storage.User `json:"user"`
	Token        string        `json:"token"`
	RefreshToken string        `json:"refresh_token"`
	WSAddr       string        `json:"ws_addr"`
}

func conflict(format string, args ...any) error {
	return httpx.Errorf(http.StatusConflict, httpx.KindConflict, format, args...)
}

func codeError(err error) error {
	switch {
	case errors.Is(err, auth.ErrCodeExpired):
		return httpx.Errorf(http.StatusBadRequest, httpx.KindCodeIsExpired, "verification code expired or missing")
	case errors.Is(err, auth.ErrCodeInvalid):
		return httpx.Errorf(http.StatusBadRequest, httpx.KindCodeIsInvalid, "verification code invalid")
	default:
		return httpx.Internal(httpx.KindInternalServer, err)
	}
}

func dbError(err error) error { return httpx.Internal(httpx.KindDbError, err) }

// checkEmail validates a plain e-mail address.
func checkEmail(email string) error {
	a, err := netmail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email || len(email) > maxEmail || strings.ContainsAny(email, "<>\r\n") {
		return httpx.Bad("invalid e-mail address")
	}
	return nil
}

func checkLen(field, v string, maxRunes int) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxRunes {
		return httpx.Bad("%s longer than %d characters", field, maxRunes)
	}
	return nil
}

// decodePassword decodes the base64 password of login and password change
// (standard alphabet, no padding; padding tolerated).
func decodePassword(s string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.StdEncoding.DecodeString(s); err != nil {
			return "", httpx.Bad("password is not base64")
		}
	}
	if len(b) == 0 || len(b) > maxPassword {
		return "", httpx.Bad("password must be 1 to %d bytes", maxPassword)
	}
	return string(b), nil
}

// POST /user/mail/send {"email"}: sends a 6-digit code valid for CodeTTL.
func (h *Handlers) sendCode(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	email := strings.TrimSpace(req.Email)
	if email == "" {
		return httpx.Bad("email is empty")
	}
	if err := checkEmail(email); err != nil {
		return err
	}
	code, err := auth.NewCode()
	if err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	if err := h.codes.Put(r.Context(), email, code, CodeTTL); err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	if err := h.mailer.SendCode(r.Context(), email, code); err != nil {
		return httpx.Internal(httpx.KindInternalServer, fmt.Errorf("send code: %w", err))
	}
	return nil
}

// POST /user {"avatar","name","password","email","code"}: registers a user.
func (h *Handlers) register(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Avatar   string `json:"avatar"`
		Name     string `json:"name"`
		Password string `json:"password"`
		Email    string `json:"email"`
		Code     string `json:"code"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	email, name := strings.TrimSpace(req.Email), strings.TrimSpace(req.Name)
	switch {
	case name == "", req.Password == "", email == "", req.Code == "":
		return httpx.Bad("name, password, email and code are required")
	case len(req.Password) > maxPassword:
		return httpx.Bad("password longer than %d bytes", maxPassword)
	}
	if err := checkEmail(email); err != nil {
		return err
	}
	if err := errors.Join(checkLen("name", name, maxName), checkLen("avatar", req.Avatar, maxAvatarName)); err != nil {
		return httpx.Bad("%v", err)
	}
	ctx := r.Context()
	// Refuse a used e-mail before consuming the code (the store checks again atomically).
	if _, err := h.users.UserByEmail(ctx, email); err == nil {
		return conflict("e-mail already registered")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return dbError(err)
	}
	if err := h.codes.Take(ctx, email, req.Code); err != nil {
		return codeError(err)
	}
	hash, salt, err := auth.HashPassword(req.Password)
	if err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	avatar := req.Avatar
	if avatar == "" {
		avatar = h.defaultAvatar
	}
	now := h.now().UnixMilli()
	id := ids.New()
	u := &storage.User{ID: id, Account: id, Name: name, Password: hash, Salt: salt, Avatar: avatar,
		Email: &email, CreateTime: now, UpdateTime: now}
	if err := h.users.CreateUser(ctx, u, h.seqStep); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return conflict("e-mail or account already registered")
		}
		return dbError(err)
	}
	httpx.WriteJSON(w, u)
	return nil
}

// POST /user/login {"account","password"(base64)}: account, phone or e-mail
// plus password. Any failure to match is 404 NotFound, as the client expects.
func (h *Handlers) login(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Account  string `json:"account"`
		Password string `json:"password"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	account := strings.TrimSpace(req.Account)
	if account == "" || req.Password == "" {
		return httpx.Bad("account and password are required")
	}
	password, err := decodePassword(req.Password)
	if err != nil {
		return err
	}
	u, err := h.users.UserByLogin(r.Context(), account)
	if errors.Is(err, storage.ErrNotFound) {
		return httpx.NotFound()
	}
	if err != nil {
		return dbError(err)
	}
	ok, err := auth.CheckPassword(password, u.Password)
	if err != nil {
		h.log.WarnContext(r.Context(), "stored password hash unusable", "user", u.ID, "err", err)
	}
	if !ok {
		return httpx.NotFound()
	}
	return h.writeLogin(w, r, u)
}

// writeLogin answers {user, token, refresh_token, ws_addr} for u, after
// recording the region of the client address when a Region lookup is set.
func (h *Handlers) writeLogin(w http.ResponseWriter, r *http.Request, u *storage.User) error {
	ctx := r.Context()
	ws, err := h.wsAddr(ctx)
	if err != nil {
		return httpx.Internal(httpx.KindServiceNotFound, fmt.Errorf("pick ws address: %w", err))
	}
	if h.region != nil {
		if region := h.region(ctx, clientIP(r)); region != "" {
			if err := h.users.SetUserRegion(ctx, u.ID, region); err != nil {
				h.log.WarnContext(ctx, "set user region", "user", u.ID, "err", err)
			} else {
				u.Region = &region
			}
		}
	}
	access, err := h.tokens.Issue(ctx, u.ID, false)
	if err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	refresh, err := h.tokens.Issue(ctx, u.ID, true)
	if err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	httpx.WriteJSON(w, LoginResponse{User: u, Token: access, RefreshToken: refresh, WSAddr: ws})
	return nil
}

// clientIP is the host of the connection's remote address (forwarding
// headers are not trusted here; a trusted proxy should rewrite RemoteAddr).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// GET /user/refresh_token/{token}/{is_refresh}: a new token (text/plain) for
// the subject of a valid, unrevoked token; a refresh token when is_refresh.
func (h *Handlers) refresh(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	var isRefresh bool
	switch vars["is_refresh"] {
	case "true":
		isRefresh = true
	case "false":
	default:
		return httpx.Errorf(http.StatusBadRequest, httpx.KindPathParsing, "is_refresh must be true or false")
	}
	unauthorized := httpx.Errorf(http.StatusUnauthorized, httpx.KindUnAuthorized, "%s", httpx.RouteTemplate(r))
	id, err := h.tokens.Verify(r.Context(), vars["token"])
	if err != nil {
		return unauthorized
	}
	if _, err := h.users.GetUser(r.Context(), id); errors.Is(err, storage.ErrNotFound) {
		return unauthorized
	} else if err != nil {
		return dbError(err)
	}
	tok, err := h.tokens.Issue(r.Context(), id, isRefresh)
	if err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	httpx.WriteText(w, tok)
	return nil
}

// DELETE /user/logout/{uuid} (token of that user): revokes every token of the user.
func (h *Handlers) logout(_ http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["uuid"]
	if err := httpx.SameUser(r, id); err != nil {
		return err
	}
	if err := h.tokens.Revoke(r.Context(), id); err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	return nil
}

// GET /user/{id} (token of that user): the full User. Another user's token
// gets 403: public profiles are served by the friend routes.
func (h *Handlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := httpx.SameUser(r, id); err != nil {
		return err
	}
	u, err := h.users.GetUser(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return httpx.NotFound()
	}
	if err != nil {
		return dbError(err)
	}
	httpx.WriteJSON(w, u)
	return nil
}

// PUT /user UserUpdate (token of user id): updates the non-empty fields.
func (h *Handlers) update(w http.ResponseWriter, r *http.Request) error {
	var req storage.UserUpdate
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.ID == "" {
		return httpx.Bad("id is required")
	}
	if err := httpx.SameUser(r, req.ID); err != nil {
		return err
	}
	if err := validateUpdate(&req); err != nil {
		return err
	}
	u, err := h.users.UpdateUser(r.Context(), &req, h.now().UnixMilli())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return httpx.NotFound()
	case errors.Is(err, storage.ErrConflict):
		return conflict("e-mail already registered")
	case err != nil:
		return dbError(err)
	}
	httpx.WriteJSON(w, u)
	return nil
}

func validateUpdate(u *storage.UserUpdate) error {
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if e := deref(u.Email); e != "" {
		if err := checkEmail(e); err != nil {
			return err
		}
	}
	return errors.Join(
		checkLen("name", u.Name, maxName),
		checkLen("avatar", u.Avatar, maxAvatarName),
		checkLen("gender", u.Gender, maxName),
		checkLen("phone", deref(u.Phone), maxPhone),
		checkLen("address", deref(u.Address), maxText),
		checkLen("region", deref(u.Region), maxText),
		checkLen("signature", deref(u.Signature), maxText),
	)
}

// PUT /user/pwd {"user_id","email","pwd"(base64),"code"}: no token; the code
// sent to the e-mail proves ownership, and the e-mail must be the user's.
// Every token of the user is revoked.
func (h *Handlers) changePassword(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		UserID string `json:"user_id"`
		Email  string `json:"email"`
		Pwd    string `json:"pwd"`
		Code   string `json:"code"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	email := strings.TrimSpace(req.Email)
	if req.UserID == "" || email == "" || req.Pwd == "" || req.Code == "" {
		return httpx.Bad("user_id, email, pwd and code are required")
	}
	password, err := decodePassword(req.Pwd)
	if err != nil {
		return err
	}
	ctx := r.Context()
	// The code first: without it nothing is revealed about the user.
	if err := h.codes.Take(ctx, email, req.Code); err != nil {
		return codeError(err)
	}
	u, err := h.users.GetUser(ctx, req.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return httpx.NotFound()
	}
	if err != nil {
		return dbError(err)
	}
	if u.Email == nil || *u.Email != email {
		return httpx.Forbidden("e-mail does not belong to the user")
	}
	hash, salt, err := auth.HashPassword(password)
	if err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	if err := h.users.SetUserPassword(ctx, u.ID, hash, salt); err != nil {
		return dbError(err)
	}
	if err := h.tokens.Revoke(ctx, u.ID); err != nil {
		return httpx.Internal(httpx.KindInternalServer, err)
	}
	return nil
}

// GET /user/{user_id}/search/{pattern} (token of user_id): exact match on
// e-mail, phone or account of another user; null when none.
func (h *Handlers) search(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	if err := httpx.SameUser(r, vars["user_id"]); err != nil {
		return err
	}
	pattern := vars["pattern"]
	if n := utf8.RuneCountInString(pattern); n < 1 || n > maxSearch {
		return httpx.Bad("pattern must be 1 to %d characters", maxSearch)
	}
	u, err := h.users.SearchUser(r.Context(), vars["user_id"], pattern)
	if errors.Is(err, storage.ErrNotFound) {
		httpx.WriteJSON(w, nil)
		return nil
	}
	if err != nil {
		return dbError(err)
	}
	httpx.WriteJSON(w, u)
	return nil
}

// userOrCreate returns the user with e-mail email, creating it (no password)
// when there is none; used by the OAuth callbacks.
func (h *Handlers) userOrCreate(ctx context.Context, email, name string, avatar func() string) (*storage.User, error) {
	u, err := h.users.UserByEmail(ctx, email)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return u, err
	}
	now := h.now().UnixMilli()
	id := ids.New()
	u = &storage.User{ID: id, Account: id, Name: name, Avatar: avatar(), Email: &email, CreateTime: now, UpdateTime: now}
	err = h.users.CreateUser(ctx, u, h.seqStep)
	if errors.Is(err, storage.ErrConflict) { // created concurrently
		return h.users.UserByEmail(ctx, email)
	}
	return u, err
}
