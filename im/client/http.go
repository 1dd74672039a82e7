// Package client is a small Go client of the Sandcat wire (sandcat-wire.md
// §2, §3): the HTTP JSON routes (HTTP) and the WebSocket carrying bincode Msg
// frames (Dial, Conn). The end-to-end tests and the load tool use it; it
// speaks the wire exactly as the native clients do (login password in
// base64 without padding, Msg.content as a JSON array of numbers, binary
// frames in bincode).
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/sandcat-im/sandcat/im/wire"
)

// HTTP calls the Sandcat HTTP API at Base ("http://127.0.0.1:50001", no
// trailing slash needed) with Token as the Bearer token when it is not
// empty. The embedded http.Client does the requests (its zero value uses
// http.DefaultTransport). An HTTP value may be copied to use another token.
type HTTP struct {
	Base  string
	Token string
	http.Client
}

// Error is a non-2xx answer: the status and the wire's {"kind", "details"}
// body (Kind is empty when the body was not that shape; Body keeps its text).
type Error struct {
	Method  string
	Path    string
	Status  int
	Kind    string
	Details *string
	Body    string
}

func (e *Error) Error() string {
	d := e.Body
	if e.Kind != "" {
		d = e.Kind
		if e.Details != nil {
			d += ": " + *e.Details
		}
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, d)
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// KindOf returns the error kind of an *Error in err's chain, or "".
func KindOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// WithToken returns a copy of h that sends token.
func (h *HTTP) WithToken(token string) *HTTP {
	c := *h
	c.Token = token
	return &c
}

// Call sends method path with in as its JSON body (none when in is nil) and
// decodes a JSON answer into out (ignored when out is nil). A non-2xx answer
// is an *Error.
func (h *HTTP) Call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := h.send(ctx, method, path, ct, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: decode %s %s: %w", method, path, err)
	}
	return nil
}

// Text sends method path (no body) and returns the answer's body as text.
func (h *HTTP) Text(ctx context.Context, method, path string) (string, error) {
	resp, err := h.send(ctx, method, path, "", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("client: read %s %s: %w", method, path, err)
	}
	return string(b), nil
}

// send does one request and turns a non-2xx answer into an *Error (the body
// is consumed then). On success the caller closes the body.
func (h *HTTP) send(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(h.Base, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	resp, err := h.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, errorOf(method, path, resp)
}

// errorOf reads a non-2xx answer into an *Error.
func errorOf(method, path string, resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	var shape struct {
		Kind    string  `json:"kind"`
		Details *string `json:"details"`
	}
	if json.Unmarshal(b, &shape) == nil {
		e.Kind, e.Details = shape.Kind, shape.Details
	}
	return e
}

// ---------------------------------------------------------------------------
// /user

// User is the wire's User JSON (§2.1).
type User struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Account    string  `json:"account"`
	Avatar     string  `json:"avatar"`
	Gender     string  `json:"gender"`
	Age        int32   `json:"age"`
	Phone      *string `json:"phone"`
	Email      *string `json:"email"`
	Address    *string `json:"address"`
	Region     *string `json:"region"`
	Birthday   *int64  `json:"birthday"`
	CreateTime int64   `json:"create_time"`
	UpdateTime int64   `json:"update_time"`
	Signature  string  `json:"signature"`
}

// RegisterRequest is the body of POST /user (the password in plain text).
type RegisterRequest struct {
	Avatar   string `json:"avatar"`
	Name     string `json:"name"`
	Password string `json:"password"`
	Email    string `json:"email"`
	Code     string `json:"code"`
}

// LoginResponse is the answer of POST /user/login.
type LoginResponse struct {
	User         User   `json:"user"`
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
	WSAddr       string `json:"ws_addr"`
}

// SendCode asks for a verification code for email (POST /user/mail/send).
func (h *HTTP) SendCode(ctx context.Context, email string) error {
	return h.Call(ctx, http.MethodPost, "/user/mail/send", map[string]string{"email": email}, nil)
}

// Register creates a user (POST /user).
func (h *HTTP) Register(ctx context.Context, r RegisterRequest) (*User, error) {
	var u User
	if err := h.Call(ctx, http.MethodPost, "/user", r, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Login logs in with an account, phone or e-mail and the plain password,
// which it sends as the clients do: standard base64 without padding.
func (h *HTTP) Login(ctx context.Context, account, password string) (*LoginResponse, error) {
	body := map[string]string{"account": account, "password": base64.RawStdEncoding.EncodeToString([]byte(password))}
	var lr LoginResponse
	if err := h.Call(ctx, http.MethodPost, "/user/login", body, &lr); err != nil {
		return nil, err
	}
	return &lr, nil
}

// Refresh exchanges a refresh token for a new access token, or for a new
// refresh token when rotate (GET /user/refresh_token/{token}/{is_refresh}).
func (h *HTTP) Refresh(ctx context.Context, refreshToken string, rotate bool) (string, error) {
	return h.Text(ctx, http.MethodGet, "/user/refresh_token/"+url.PathEscape(refreshToken)+"/"+strconv.FormatBool(rotate))
}

// Logout revokes every token of the user (DELETE /user/logout/{id}).
func (h *HTTP) Logout(ctx context.Context, userID string) error {
	return h.Call(ctx, http.MethodDelete, "/user/logout/"+url.PathEscape(userID), nil, nil)
}

// GetUser returns the caller's own User (GET /user/{id}).
func (h *HTTP) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	if err := h.Call(ctx, http.MethodGet, "/user/"+url.PathEscape(id), nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// ---------------------------------------------------------------------------
// /friend

// FriendRequest is the body of POST /friend.
type FriendRequest struct {
	UserID    string  `json:"user_id"`
	FriendID  string  `json:"friend_id"`
	ApplyMsg  *string `json:"apply_msg"`
	ReqRemark *string `json:"req_remark"`
	Source    string  `json:"source"`
}

// RequestFriend sends a friend request (POST /friend); the answer describes the target.
func (h *HTTP) RequestFriend(ctx context.Context, r FriendRequest) (*wire.FriendshipWithUser, error) {
	var out wire.FriendshipWithUser
	if err := h.Call(ctx, http.MethodPost, "/friend", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgreeFriend accepts the request fsID (PUT /friend/agree); the answer is the
// requester as a Friend.
func (h *HTTP) AgreeFriend(ctx context.Context, fsID string, respMsg, respRemark *string) (*wire.Friend, error) {
	body := map[string]any{"fs_id": fsID, "resp_msg": respMsg, "resp_remark": respRemark}
	var out wire.Friend
	if err := h.Call(ctx, http.MethodPut, "/friend/agree", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BlockUser makes userID block friendID (POST /friend/block).
func (h *HTTP) BlockUser(ctx context.Context, userID, friendID string) error {
	return h.Call(ctx, http.MethodPost, "/friend/block", map[string]string{"user_id": userID, "friend_id": friendID}, nil)
}

// ---------------------------------------------------------------------------
// /group

// CreateGroup creates a group owned by userID with members (POST /group/{user_id}).
func (h *HTTP) CreateGroup(ctx context.Context, userID, name, avatar string, members []string) (*wire.GroupInvitation, error) {
	if members == nil {
		members = []string{}
	}
	body := map[string]any{"id": "", "owner": userID, "avatar": avatar, "group_name": name, "members_id": members}
	var out wire.GroupInvitation
	if err := h.Call(ctx, http.MethodPost, "/group/"+url.PathEscape(userID), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---------------------------------------------------------------------------
// /message

// PullRequest is the body of POST /message: exclusive starts, inclusive ends.
type PullRequest struct {
	UserID    string `json:"user_id"`
	SendStart int64  `json:"send_start"`
	SendEnd   int64  `json:"send_end"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
}

// Seqs is the answer of GET /message/seq/{user_id}.
type Seqs struct {
	Seq     int64 `json:"seq"`
	SendSeq int64 `json:"send_seq"`
}

// Pull returns the inbox messages of the ranges (POST /message).
func (h *HTTP) Pull(ctx context.Context, r PullRequest) ([]wire.Msg, error) {
	var out []wire.Msg
	if err := h.Call(ctx, http.MethodPost, "/message", r, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Seq returns the user's current recv and send seqs (GET /message/seq/{user_id}).
func (h *HTTP) Seq(ctx context.Context, userID string) (Seqs, error) {
	var out Seqs
	err := h.Call(ctx, http.MethodGet, "/message/seq/"+url.PathEscape(userID), nil, &out)
	return out, err
}

// DeleteMessages deletes the user's inbox entries with those receiver seqs (DELETE /message).
func (h *HTTP) DeleteMessages(ctx context.Context, userID string, seqs []int64) error {
	return h.Call(ctx, http.MethodDelete, "/message", map[string]any{"user_id": userID, "msg_id": seqs}, nil)
}

// ---------------------------------------------------------------------------
// /file

// Upload sends one file as the clients do (multipart field "file", POST
// /file/upload) and returns the stored object name.
func (h *HTTP) Upload(ctx context.Context, filename, contentType string, data io.Reader) (string, error) {
	return h.upload(ctx, "/file/upload", filename, contentType, data)
}

// UploadAvatar is Upload into the avatar bucket (POST /file/avatar/upload).
func (h *HTTP) UploadAvatar(ctx context.Context, filename, contentType string, data io.Reader) (string, error) {
	return h.upload(ctx, "/file/avatar/upload", filename, contentType, data)
}

func (h *HTTP) upload(ctx context.Context, path, filename, contentType string, data io.Reader) (string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	hdr := make(textproto.MIMEHeader)
	hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, filename))
	if contentType != "" {
		hdr.Set("Content-Type", contentType)
	}
	pw, err := mw.CreatePart(hdr)
	if err != nil {
		return "", fmt.Errorf("client: upload: %w", err)
	}
	if _, err := io.Copy(pw, data); err != nil {
		return "", fmt.Errorf("client: upload: read the file: %w", err)
	}
	if err := mw.Close(); err != nil {
		return "", fmt.Errorf("client: upload: %w", err)
	}
	resp, err := h.send(ctx, http.MethodPost, path, mw.FormDataContentType(), &buf)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("client: upload: read the answer: %w", err)
	}
	return string(b), nil
}

// Download returns a stored file and its content type (GET /file/get/{name}).
func (h *HTTP) Download(ctx context.Context, name string) ([]byte, string, error) {
	return h.download(ctx, "/file/get/"+url.PathEscape(name))
}

// DownloadAvatar is Download from the avatar bucket (GET /file/avatar/get/{name}).
func (h *HTTP) DownloadAvatar(ctx context.Context, name string) ([]byte, string, error) {
	return h.download(ctx, "/file/avatar/get/"+url.PathEscape(name))
}

func (h *HTTP) download(ctx context.Context, path string) ([]byte, string, error) {
	resp, err := h.send(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("client: download %s: %w", path, err)
	}
	return b, resp.Header.Get("Content-Type"), nil
}
