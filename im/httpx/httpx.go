// Package httpx holds what every Sandcat HTTP route shares: the wire's error
// shape {kind, details}, JSON bodies with limits, and bearer-token auth.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Error kinds of the wire (sandcat-wire.md §2.0).
const (
	KindBadRequest        = "BadRequest"
	KindBodyParsing       = "BodyParsing"
	KindPathParsing       = "PathParsing"
	KindCodeIsExpired     = "CodeIsExpired"
	KindCodeIsInvalid     = "CodeIsInvalid"
	KindUnAuthorized      = "UnAuthorized"
	KindAccountOrPassword = "AccountOrPassword"
	KindForbidden         = "Forbidden" // new: the caller may not act on that resource
	KindNotFound          = "NotFound"
	KindConflict          = "Conflict" // new: e-mail or account already used, duplicate member
	KindPayloadTooLarge   = "PayloadTooLarge"
	KindDbError           = "DbError"
	KindInternalServer    = "InternalServer"
	KindOSSError          = "OSSError"
	KindServiceNotFound   = "ServiceNotFound"
)

// Error is an error with the wire's kind and HTTP status.
type Error struct {
	Status  int
	Kind    string
	Details *string
	Err     error // logged, never sent
}

func (e *Error) Error() string {
	d := ""
	if e.Details != nil {
		d = *e.Details
	}
	if e.Err != nil {
		return fmt.Sprintf("%s (%d): %s: %v", e.Kind, e.Status, d, e.Err)
	}
	return fmt.Sprintf("%s (%d): %s", e.Kind, e.Status, d)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error whose details are the formatted text.
func Errorf(status int, kind, format string, args ...any) *Error {
	d := fmt.Sprintf(format, args...)
	return &Error{Status: status, Kind: kind, Details: &d}
}

// Bad is a 400 BadRequest with details.
func Bad(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, KindBadRequest, format, args...)
}

// NotFound is a 404 NotFound with null details.
func NotFound() *Error { return &Error{Status: http.StatusNotFound, Kind: KindNotFound} }

// Forbidden is a 403 for a caller acting on another user's resources.
func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, KindForbidden, format, args...)
}

// Internal wraps an unexpected error as a 500 whose details stay short; err is logged.
func Internal(kind string, err error) *Error {
	d := "internal error"
	return &Error{Status: http.StatusInternalServerError, Kind: kind, Details: &d, Err: err}
}

type errorBody struct {
	Kind    string  `json:"kind"`
	Details *string `json:"details"`
}

// WriteError writes err in the wire's error shape. Errors that are not *Error
// become a 500 InternalServer; 5xx errors are logged with their cause.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Internal(KindInternalServer, err)
	}
	if e.Status >= 500 && log != nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "kind", e.Kind, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Kind: e.Kind, Details: e.Details})
}

// WriteJSON writes v as a 200 JSON body.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// WriteText writes s as a 200 text/plain body (tokens, object names).
func WriteText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, s)
}

// MaxJSONBody is the largest JSON request body accepted.
const MaxJSONBody = 1 << 20

// DecodeJSON reads a JSON body into v: application/json only (415 otherwise),
// at most MaxJSONBody bytes (413), one value, unknown fields ignored; syntax
// errors are 400 and type errors 422, all with kind BodyParsing.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return Errorf(http.StatusUnsupportedMediaType, KindBodyParsing,
			"Expected request with `Content-Type: application/json`")
	}
	body := http.MaxBytesReader(w, r.Body, MaxJSONBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return Errorf(http.StatusRequestEntityTooLarge, KindPayloadTooLarge, "body larger than %d bytes", MaxJSONBody)
		case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return Errorf(http.StatusBadRequest, KindBodyParsing, "Failed to parse the request body as JSON: %v", err)
		case errors.As(err, &typ):
			return Errorf(http.StatusUnprocessableEntity, KindBodyParsing,
				"Failed to deserialize the JSON body into the target type: %s: %v", typ.Field, err)
		default:
			return Errorf(http.StatusUnprocessableEntity, KindBodyParsing,
				"Failed to deserialize the JSON body into the target type: %v", err)
		}
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, KindBodyParsing, "trailing data after the JSON body")
	}
	return nil
}

// TokenVerifier checks an access token and returns the user id it was issued to.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (userID string, err error)
}

type ctxKey struct{}

// UserID returns the authenticated user of a request passed through RequireUser.
func UserID(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}

// WithUserID returns ctx carrying an authenticated user id (for tests and internal calls).
func WithUserID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequireUser is middleware that demands `Authorization: Bearer <token>` and
// puts the token's user id in the context; failures are 401 UnAuthorized with
// the route template as details, as the original server answered.
func RequireUser(v TokenVerifier, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			tok, ok := strings.CutPrefix(h, "Bearer ")
			tok = strings.TrimSpace(tok)
			if !ok || tok == "" {
				WriteError(w, r, log, Errorf(http.StatusUnauthorized, KindUnAuthorized, "%s", RouteTemplate(r)))
				return
			}
			id, err := v.Verify(r.Context(), tok)
			if err != nil {
				WriteError(w, r, log, Errorf(http.StatusUnauthorized, KindUnAuthorized, "%s", RouteTemplate(r)))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithUserID(r.Context(), id)))
		})
	}
}

// RouteTemplate is the matched mux route template, or the path.
func RouteTemplate(r *http.Request) string {
	if rt := mux.CurrentRoute(r); rt != nil {
		if t, err := rt.GetPathTemplate(); err == nil {
			return t
		}
	}
	return r.URL.Path
}

// SameUser checks that the authenticated user is id (bug B5 of the original):
// 403 Forbidden otherwise.
func SameUser(r *http.Request, id string) error {
	if u := UserID(r.Context()); u == "" || u != id {
		return Forbidden("token does not belong to user %q", id)
	}
	return nil
}

// Handler adapts a handler that returns an error to http.Handler.
type Handler struct {
	Log *slog.Logger
	Fn  func(w http.ResponseWriter, r *http.Request) error
}

func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.Fn(w, r); err != nil {
		WriteError(w, r, h.Log, err)
	}
}
