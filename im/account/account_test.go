package account_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/account"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

func TestHTTPSQLite(t *testing.T) {
	httpSuite(t, func(t *testing.T) storage.Users { return sqlite.OpenTest(t) })
}

func TestHTTPPostgres(t *testing.T) {
	httpSuite(t, func(t *testing.T) storage.Users { return pgtest.Open(t) })
}

func httpSuite(t *testing.T, open func(t *testing.T) storage.Users) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"RegisterAndLoginShapes", testRegisterAndLoginShapes},
		{"SendCode", testSendCode},
		{"RegisterErrors", testRegisterErrors},
		{"LoginErrors", testLoginErrors},
		{"Refresh", testRefresh},
		{"Logout", testLogout},
		{"GetUser", testGetUser},
		{"UpdateUser", testUpdateUser},
		{"ChangePassword", testChangePassword},
		{"Search", testSearch},
		{"APIPrefix", testAPIPrefix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newEnv(t, open(t), nil)) })
	}
}

func testRegisterAndLoginShapes(t *testing.T, e *env) {
	email := "alice@example.com"
	wantEmpty200(t, e.do("POST", "/user/mail/send", `{"email":"alice@example.com"}`, "", ""))
	code := e.mailer.last(t, email)
	if n, err := strconv.Atoi(code); err != nil || n < 100000 || n > 999999 {
		t.Fatalf("code %q is not 6 digits", code)
	}
	before := time.Now().UnixMilli()
	r := e.do("POST", "/user", jsonBody(t, map[string]string{"avatar": "avatar2.png", "name": "Alice",
		"password": "s3cret pässword", "email": email, "code": code}), "", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("register: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	u := r.json(t)
	wantKeys(t, "User", u, userKeys...)
	id, _ := u["id"].(string)
	if len(id) != ids.Size || u["account"] != id || u["name"] != "Alice" || u["avatar"] != "avatar2.png" ||
		u["gender"] != "" || u["age"] != float64(0) || u["email"] != email || u["signature"] != "" {
		t.Fatalf("registered user %s", r.body)
	}
	for _, k := range []string{"phone", "address", "region", "birthday"} {
		if u[k] != nil {
			t.Fatalf("%s = %v, want null", k, u[k])
		}
	}
	if ct := u["create_time"].(float64); int64(ct) < before || u["update_time"] != u["create_time"] {
		t.Fatalf("times %v %v", u["create_time"], u["update_time"])
	}

	for _, account := range []string{email, id} {
		r = e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": account, "password": b64("s3cret pässword")}), "", "")
		if r.status != http.StatusOK {
			t.Fatalf("login by %s: %d %s", account, r.status, r.body)
		}
		m := r.json(t)
		wantKeys(t, "login", m, "user", "token", "refresh_token", "ws_addr")
		wantKeys(t, "login user", m["user"].(map[string]any), userKeys...)
		if m["ws_addr"] != wsAddr || m["user"].(map[string]any)["id"] != id {
			t.Fatalf("login %s", r.body)
		}
		for _, tc := range []struct {
			key string
			ttl int64
		}{{"token", 4 * 3600}, {"refresh_token", 28 * 3600}} {
			c := claims(t, m[tc.key].(string))
			wantKeys(t, tc.key+" claims", c, "sub", "exp", "iat")
			if c["sub"] != id || claimInt(t, c, "exp")-claimInt(t, c, "iat") != tc.ttl {
				t.Fatalf("%s claims %v", tc.key, c)
			}
			if got, err := e.tokens.Verify(context.Background(), m[tc.key].(string)); err != nil || got != id {
				t.Fatalf("%s does not verify: %v", tc.key, err)
			}
		}
	}
	// Padded base64 is accepted too.
	r = e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": email,
		"password": base64.StdEncoding.EncodeToString([]byte("s3cret pässword"))}), "", "")
	if r.status != http.StatusOK {
		t.Fatalf("login with padded base64: %d %s", r.status, r.body)
	}
}

func testSendCode(t *testing.T, e *env) {
	tests := []struct {
		name, body, ct string
		status         int
		kind           string
	}{
		{"empty email", `{"email":""}`, "", 400, httpx.KindBadRequest},
		{"missing email", `{}`, "", 400, httpx.KindBadRequest},
		{"not an address", `{"email":"nope"}`, "", 400, httpx.KindBadRequest},
		{"display name", `{"email":"Bob <bob@example.com>"}`, "", 400, httpx.KindBadRequest},
		{"too long", `{"email":"` + strings.Repeat("a", 60) + `@example.com"}`, "", 400, httpx.KindBadRequest},
		{"malformed json", `{"email":`, "", 400, httpx.KindBodyParsing},
		{"wrong type", `{"email":5}`, "", 422, httpx.KindBodyParsing},
		{"wrong content type", `{"email":"a@example.com"}`, "text/plain", 415, httpx.KindBodyParsing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do("POST", "/user/mail/send", tc.body, tc.ct, ""), tc.status, tc.kind, anyDetails)
		})
	}
	if n := e.mailer.calls.Load(); n != 0 {
		t.Fatalf("mailer called %d times for invalid requests", n)
	}
	e.mailer.fail.Store(true)
	wantError(t, e.do("POST", "/user/mail/send", `{"email":"a@example.com"}`, "", ""), 500, httpx.KindInternalServer, anyDetails)
	e.mailer.fail.Store(false)
	// A second code replaces the first.
	wantEmpty200(t, e.do("POST", "/user/mail/send", `{"email":"a@example.com"}`, "", ""))
	first := e.mailer.last(t, "a@example.com")
	wantEmpty200(t, e.do("POST", "/user/mail/send", `{"email":"a@example.com"}`, "", ""))
	second := e.mailer.last(t, "a@example.com")
	if first != second {
		r := e.do("POST", "/user", jsonBody(t, map[string]string{"name": "A", "password": "p", "email": "a@example.com", "code": first}), "", "")
		wantError(t, r, 400, httpx.KindCodeIsInvalid, anyDetails)
	}
	r := e.do("POST", "/user", jsonBody(t, map[string]string{"name": "A", "password": "p", "email": "a@example.com", "code": second}), "", "")
	if r.status != 200 || r.json(t)["avatar"] != account.DefaultAvatar {
		t.Fatalf("register without avatar: %d %s", r.status, r.body)
	}
}

func testRegisterErrors(t *testing.T, e *env) {
	taken := e.signUp(t, "taken@example.com", "pw")
	reg := func(name, password, email, code string) string {
		return jsonBody(t, map[string]string{"avatar": "avatar1.png", "name": name, "password": password, "email": email, "code": code})
	}
	sendCode := func(email string) string {
		wantEmpty200(t, e.do("POST", "/user/mail/send", jsonBody(t, map[string]string{"email": email}), "", ""))
		return e.mailer.last(t, email)
	}
	tests := []struct {
		name   string
		body   func() string
		ct     string
		status int
		kind   string
	}{
		{"missing name", func() string { return reg("", "pw", "x1@example.com", sendCode("x1@example.com")) }, "", 400, httpx.KindBadRequest},
		{"missing password", func() string { return reg("X", "", "x1@example.com", sendCode("x1@example.com")) }, "", 400, httpx.KindBadRequest},
		{"missing email", func() string { return reg("X", "pw", "", "123456") }, "", 400, httpx.KindBadRequest},
		{"missing code", func() string { return reg("X", "pw", "x1@example.com", "") }, "", 400, httpx.KindBadRequest},
		{"invalid email", func() string { return reg("X", "pw", "x1", "123456") }, "", 400, httpx.KindBadRequest},
		{"name too long", func() string { return reg(strings.Repeat("n", 129), "pw", "x1@example.com", "123456") }, "", 400, httpx.KindBadRequest},
		{"no code sent", func() string { return reg("X", "pw", "never@example.com", "123456") }, "", 400, httpx.KindCodeIsExpired},
		{"wrong code", func() string {
			c := sendCode("x2@example.com")
			return reg("X", "pw", "x2@example.com", fmt.Sprintf("%06d", 100000+(mustAtoi(t, c)-100000+1)%900000))
		}, "", 400, httpx.KindCodeIsInvalid},
		{"code of another e-mail", func() string {
			c := sendCode("x3@example.com")
			for sendCode("x4@example.com") == c { // one chance in 900000
			}
			return reg("X", "pw", "x4@example.com", c)
		}, "", 400, httpx.KindCodeIsInvalid},
		{"expired code", func() string {
			c := sendCode("x5@example.com")
			e.clock.advance(account.CodeTTL + time.Second)
			return reg("X", "pw", "x5@example.com", c)
		}, "", 400, httpx.KindCodeIsExpired},
		{"used e-mail", func() string { return reg("X", "pw", taken.email, sendCode(taken.email)) }, "", 409, httpx.KindConflict},
		{"malformed json", func() string { return `{"name":"X",` }, "", 400, httpx.KindBodyParsing},
		{"not an object", func() string { return `[1,2]` }, "", 422, httpx.KindBodyParsing},
		{"trailing data", func() string { return reg("X", "pw", "x6@example.com", "1") + "{}" }, "", 400, httpx.KindBodyParsing},
		{"wrong content type", func() string { return reg("X", "pw", "x6@example.com", "1") }, "application/x-www-form-urlencoded", 415, httpx.KindBodyParsing},
		{"oversize body", func() string {
			return `{"name":"` + strings.Repeat("x", httpx.MaxJSONBody) + `"}`
		}, "", 413, httpx.KindPayloadTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do("POST", "/user", tc.body(), tc.ct, ""), tc.status, tc.kind, anyDetails)
		})
	}
	// The code of a used e-mail is not consumed by the refused registration.
	c := sendCode(taken.email)
	wantError(t, e.do("POST", "/user", reg("X", "pw", taken.email, c), "", ""), 409, httpx.KindConflict, anyDetails)
	wantEmpty200(t, e.do("PUT", "/user/pwd", jsonBody(t, map[string]string{"user_id": taken.id, "email": taken.email,
		"pwd": b64("new"), "code": c}), "", ""))
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	must(t, err)
	return n
}

func testLoginErrors(t *testing.T, e *env) {
	s := e.signUp(t, "bob@example.com", "right")
	// A user created through OAuth has no password hash.
	oauthID := ids.New()
	must(t, e.store.CreateUser(context.Background(), &storage.User{ID: oauthID, Account: oauthID, Name: "O",
		Avatar: "avatar1.png", Email: ptr("oauth@example.com")}, 100))
	login := func(account, password string) string {
		return jsonBody(t, map[string]string{"account": account, "password": password})
	}
	tests := []struct {
		name, body, ct string
		status         int
		kind           string
		details        *string
	}{
		{"wrong password", login(s.email, b64("wrong")), "", 404, httpx.KindNotFound, nil},
		{"unknown account", login("nobody@example.com", b64("right")), "", 404, httpx.KindNotFound, nil},
		{"oauth user without password", login("oauth@example.com", b64("anything")), "", 404, httpx.KindNotFound, nil},
		{"oauth user, some password", login(oauthID, b64("x")), "", 404, httpx.KindNotFound, nil},
		{"empty account", login("", b64("right")), "", 400, httpx.KindBadRequest, anyDetails},
		{"empty password", login(s.email, ""), "", 400, httpx.KindBadRequest, anyDetails},
		{"missing fields", `{}`, "", 400, httpx.KindBadRequest, anyDetails},
		{"password not base64", login(s.email, "!!not base64!!"), "", 400, httpx.KindBadRequest, anyDetails},
		{"plain password is not base64", login(s.email, "right"), "", 400, httpx.KindBadRequest, anyDetails},
		{"malformed json", `{"account":`, "", 400, httpx.KindBodyParsing, anyDetails},
		{"wrong content type", login(s.email, b64("right")), "text/plain", 415, httpx.KindBodyParsing, anyDetails},
		{"no content type", login(s.email, b64("right")), "none", 415, httpx.KindBodyParsing, anyDetails},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do("POST", "/user/login", tc.body, tc.ct, ""), tc.status, tc.kind, tc.details)
		})
	}
}

func testRefresh(t *testing.T, e *env) {
	s := e.signUp(t, "carol@example.com", "pw")
	for _, tc := range []struct {
		isRefresh string
		ttl       int64
	}{{"false", 4 * 3600}, {"true", 28 * 3600}} {
		r := e.do("GET", "/user/refresh_token/"+s.refresh+"/"+tc.isRefresh, "", "", "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("refresh %s: %d %s %s", tc.isRefresh, r.status, r.header.Get("Content-Type"), r.body)
		}
		tok := string(r.body)
		c := claims(t, tok)
		wantKeys(t, "claims", c, "sub", "exp", "iat")
		if c["sub"] != s.id || claimInt(t, c, "exp")-claimInt(t, c, "iat") != tc.ttl {
			t.Fatalf("refreshed claims %v", c)
		}
		// The new token works on an authenticated route.
		if r := e.do("GET", "/user/"+s.id, "", "", tok); r.status != 200 {
			t.Fatalf("refreshed token refused: %d %s", r.status, r.body)
		}
	}
	route := ptr("/user/refresh_token/{token}/{is_refresh}")
	wantError(t, e.do("GET", "/user/refresh_token/garbage/false", "", "", ""), 401, httpx.KindUnAuthorized, route)
	wantError(t, e.do("GET", "/user/refresh_token/"+s.refresh+"/maybe", "", "", ""), 400, httpx.KindPathParsing, anyDetails)
	// A token signed with another secret.
	other, err := auth.NewTokens([]byte("other"), e.store, nil)
	must(t, err)
	forged, err := other.Issue(context.Background(), s.id, true)
	must(t, err)
	wantError(t, e.do("GET", "/user/refresh_token/"+forged+"/false", "", "", ""), 401, httpx.KindUnAuthorized, route)
	// A valid token of a user that does not exist.
	ghost, err := e.tokens.Issue(context.Background(), ids.New(), true)
	must(t, err)
	wantError(t, e.do("GET", "/user/refresh_token/"+ghost+"/false", "", "", ""), 401, httpx.KindUnAuthorized, route)
}

func testLogout(t *testing.T, e *env) {
	a := e.signUp(t, "a@example.com", "pa")
	b := e.signUp(t, "b@example.com", "pb")
	wantError(t, e.do("DELETE", "/user/logout/"+b.id, "", "", a.token), 403, httpx.KindForbidden, anyDetails)
	wantError(t, e.do("DELETE", "/user/logout/"+a.id, "", "", ""), 401, httpx.KindUnAuthorized, ptr("/user/logout/{uuid}"))
	// b is still logged in after a's refused attempt.
	if r := e.do("GET", "/user/"+b.id, "", "", b.token); r.status != 200 {
		t.Fatalf("b after refused logout: %d", r.status)
	}
	wantEmpty200(t, e.do("DELETE", "/user/logout/"+a.id, "", "", a.token))
	wantError(t, e.do("GET", "/user/"+a.id, "", "", a.token), 401, httpx.KindUnAuthorized, ptr("/user/{id}"))
	wantError(t, e.do("GET", "/user/refresh_token/"+a.refresh+"/false", "", "", ""), 401, httpx.KindUnAuthorized, anyDetails)
	wantError(t, e.do("GET", "/user/refresh_token/"+a.refresh+"/true", "", "", ""), 401, httpx.KindUnAuthorized, anyDetails)
	// b's tokens are untouched.
	if r := e.do("GET", "/user/refresh_token/"+b.refresh+"/false", "", "", ""); r.status != 200 {
		t.Fatalf("b's refresh after a's logout: %d %s", r.status, r.body)
	}
	// Logging in again right away gives working tokens.
	a2 := e.login(t, a.email, "pa")
	if r := e.do("GET", "/user/"+a.id, "", "", a2.token); r.status != 200 {
		t.Fatalf("token after re-login: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/user/refresh_token/"+a2.refresh+"/false", "", "", ""); r.status != 200 {
		t.Fatalf("refresh after re-login: %d %s", r.status, r.body)
	}
}

func testGetUser(t *testing.T, e *env) {
	a := e.signUp(t, "ga@example.com", "pa")
	b := e.signUp(t, "gb@example.com", "pb")
	r := e.do("GET", "/user/"+a.id, "", "", a.token)
	if r.status != 200 {
		t.Fatalf("get self: %d %s", r.status, r.body)
	}
	u := r.json(t)
	wantKeys(t, "User", u, userKeys...)
	if u["id"] != a.id || u["email"] != a.email || u["name"] != "N "+a.email {
		t.Fatalf("get self: %s", r.body)
	}
	wantError(t, e.do("GET", "/user/"+b.id, "", "", a.token), 403, httpx.KindForbidden, anyDetails)
	wantError(t, e.do("GET", "/user/"+a.id, "", "", ""), 401, httpx.KindUnAuthorized, ptr("/user/{id}"))
	wantError(t, e.do("GET", "/user/"+a.id, "", "", "not-a-jwt"), 401, httpx.KindUnAuthorized, ptr("/user/{id}"))
	// A valid token for an id that has no user.
	ghost := ids.New()
	tok, err := e.tokens.Issue(context.Background(), ghost, false)
	must(t, err)
	wantError(t, e.do("GET", "/user/"+ghost, "", "", tok), 404, httpx.KindNotFound, nil)
}

func testUpdateUser(t *testing.T, e *env) {
	a := e.signUp(t, "ua@example.com", "pa")
	b := e.signUp(t, "ub@example.com", "pb")
	r := e.do("PUT", "/user", jsonBody(t, storage.UserUpdate{ID: a.id, Name: "Alice 2", Gender: "female",
		Phone: ptr("+4912345"), Address: ptr("Street 1"), Birthday: ptr(int64(946684800000)), Signature: ptr("hi")}), "", a.token)
	if r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	u := r.json(t)
	wantKeys(t, "User", u, userKeys...)
	want := map[string]any{"id": a.id, "name": "Alice 2", "avatar": "avatar2.png", "gender": "female",
		"phone": "+4912345", "email": a.email, "address": "Street 1", "region": nil,
		"birthday": float64(946684800000), "signature": "hi", "account": a.id, "age": float64(0)}
	for k, v := range want {
		if u[k] != v {
			t.Fatalf("updated %s = %v, want %v (%s)", k, u[k], v, r.body)
		}
	}
	if u["update_time"].(float64) < u["create_time"].(float64) {
		t.Fatalf("update_time %v < create_time %v", u["update_time"], u["create_time"])
	}
	// Empty values keep the stored ones.
	r = e.do("PUT", "/user", jsonBody(t, map[string]any{"id": a.id, "name": "", "avatar": "", "gender": "",
		"phone": "", "email": nil, "birthday": 0}), "", a.token)
	if r.status != 200 || r.json(t)["name"] != "Alice 2" || r.json(t)["phone"] != "+4912345" {
		t.Fatalf("empty update: %d %s", r.status, r.body)
	}
	stored, err := e.store.GetUser(context.Background(), a.id)
	must(t, err)
	if stored.Name != "Alice 2" || stored.Signature != "hi" {
		t.Fatalf("stored after update: %+v", stored)
	}
	tests := []struct {
		name, body, token string
		status            int
		kind              string
	}{
		{"another user's id", jsonBody(t, storage.UserUpdate{ID: b.id, Name: "hijack"}), a.token, 403, httpx.KindForbidden},
		{"no token", jsonBody(t, storage.UserUpdate{ID: a.id, Name: "x"}), "", 401, httpx.KindUnAuthorized},
		{"missing id", `{"name":"x"}`, a.token, 400, httpx.KindBadRequest},
		{"e-mail of another user", jsonBody(t, storage.UserUpdate{ID: a.id, Email: ptr(b.email)}), a.token, 409, httpx.KindConflict},
		{"invalid e-mail", jsonBody(t, storage.UserUpdate{ID: a.id, Email: ptr("nope")}), a.token, 400, httpx.KindBadRequest},
		{"phone too long", jsonBody(t, storage.UserUpdate{ID: a.id, Phone: ptr(strings.Repeat("1", 21))}), a.token, 400, httpx.KindBadRequest},
		{"signature too long", jsonBody(t, storage.UserUpdate{ID: a.id, Signature: ptr(strings.Repeat("s", 1025))}), a.token, 400, httpx.KindBadRequest},
		{"malformed json", `{"id":`, a.token, 400, httpx.KindBodyParsing},
		{"wrong birthday type", `{"id":"` + a.id + `","birthday":"soon"}`, a.token, 422, httpx.KindBodyParsing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do("PUT", "/user", tc.body, "", tc.token), tc.status, tc.kind, anyDetails)
		})
	}
	if got, _ := e.store.GetUser(context.Background(), b.id); got.Name != "N "+b.email {
		t.Fatalf("b was changed: %+v", got)
	}
	// The e-mail can be changed to a free one, and login follows it.
	r = e.do("PUT", "/user", jsonBody(t, storage.UserUpdate{ID: a.id, Email: ptr("ua2@example.com")}), "", a.token)
	if r.status != 200 || r.json(t)["email"] != "ua2@example.com" {
		t.Fatalf("email change: %d %s", r.status, r.body)
	}
	e.login(t, "ua2@example.com", "pa")
}

func testChangePassword(t *testing.T, e *env) {
	a := e.signUp(t, "pa@example.com", "old")
	b := e.signUp(t, "pb@example.com", "pb")
	sendCode := func(email string) string {
		wantEmpty200(t, e.do("POST", "/user/mail/send", jsonBody(t, map[string]string{"email": email}), "", ""))
		return e.mailer.last(t, email)
	}
	pwd := func(userID, email, pw, code string) string {
		return jsonBody(t, map[string]string{"user_id": userID, "email": email, "pwd": pw, "code": code})
	}
	tests := []struct {
		name   string
		body   func() string
		status int
		kind   string
	}{
		{"missing user_id", func() string { return pwd("", a.email, b64("n"), "123456") }, 400, httpx.KindBadRequest},
		{"missing email", func() string { return pwd(a.id, "", b64("n"), "123456") }, 400, httpx.KindBadRequest},
		{"missing pwd", func() string { return pwd(a.id, a.email, "", "123456") }, 400, httpx.KindBadRequest},
		{"missing code", func() string { return pwd(a.id, a.email, b64("n"), "") }, 400, httpx.KindBadRequest},
		{"pwd not base64", func() string { return pwd(a.id, a.email, "%%%", sendCode(a.email)) }, 400, httpx.KindBadRequest},
		{"no code sent", func() string { return pwd(a.id, "fresh@example.com", b64("n"), "123456") }, 400, httpx.KindCodeIsExpired},
		{"wrong code", func() string { return pwd(a.id, a.email, b64("n"), sendCode(a.email)+"1") }, 400, httpx.KindCodeIsInvalid},
		{"expired code", func() string {
			c := sendCode(a.email)
			e.clock.advance(account.CodeTTL + time.Second)
			return pwd(a.id, a.email, b64("n"), c)
		}, 400, httpx.KindCodeIsExpired},
		// b proves b's e-mail but asks for a's account.
		{"e-mail of another user", func() string { return pwd(a.id, b.email, b64("n"), sendCode(b.email)) }, 403, httpx.KindForbidden},
		{"unknown user", func() string { return pwd(ids.New(), b.email, b64("n"), sendCode(b.email)) }, 404, httpx.KindNotFound},
		{"malformed json", func() string { return `{"user_id":` }, 400, httpx.KindBodyParsing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("PUT", "/user/pwd", tc.body(), "", "")
			if tc.kind == httpx.KindNotFound {
				wantError(t, r, tc.status, tc.kind, nil)
				return
			}
			wantError(t, r, tc.status, tc.kind, anyDetails)
		})
	}
	e.login(t, a.email, "old") // nothing changed so far
	c := sendCode(a.email)
	wantEmpty200(t, e.do("PUT", "/user/pwd", pwd(a.id, a.email, b64("new password"), c), "", ""))
	// The code is single use.
	wantError(t, e.do("PUT", "/user/pwd", pwd(a.id, a.email, b64("again"), c), "", ""), 400, httpx.KindCodeIsExpired, anyDetails)
	wantError(t, e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": a.email, "password": b64("old")}), "", ""),
		404, httpx.KindNotFound, nil)
	e.login(t, a.email, "new password")
	// The old session is revoked.
	wantError(t, e.do("GET", "/user/"+a.id, "", "", a.token), 401, httpx.KindUnAuthorized, anyDetails)
	// A user created through OAuth (no password) can set one.
	oauthID := ids.New()
	must(t, e.store.CreateUser(context.Background(), &storage.User{ID: oauthID, Account: oauthID, Name: "O",
		Avatar: "avatar1.png", Email: ptr("o@example.com")}, 100))
	wantEmpty200(t, e.do("PUT", "/user/pwd", pwd(oauthID, "o@example.com", b64("first"), sendCode("o@example.com")), "", ""))
	e.login(t, oauthID, "first")
}

func testSearch(t *testing.T, e *env) {
	a := e.signUp(t, "sa@example.com", "pa")
	b := e.signUp(t, "sb@example.com", "pb")
	r := e.do("GET", "/user/"+a.id+"/search/"+b.email, "", "", a.token)
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	m := r.json(t)
	wantKeys(t, "UserWithMatchType", m, "id", "name", "account", "avatar", "gender", "age", "email", "region",
		"birthday", "match_type", "signature", "is_friend")
	if m["id"] != b.id || m["match_type"] != "email" || m["is_friend"] != false || m["email"] != b.email ||
		m["region"] != nil || m["birthday"] != nil || m["account"] != b.id {
		t.Fatalf("search result %s", r.body)
	}
	r = e.do("GET", "/user/"+a.id+"/search/"+b.id, "", "", a.token)
	if r.status != 200 || r.json(t)["match_type"] != "account" {
		t.Fatalf("search by account: %d %s", r.status, r.body)
	}
	for _, pattern := range []string{"nobody@example.com", a.email, "sb"} {
		r = e.do("GET", "/user/"+a.id+"/search/"+pattern, "", "", a.token)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != "null" {
			t.Fatalf("search %q: %d %q, want null", pattern, r.status, r.body)
		}
	}
	wantError(t, e.do("GET", "/user/"+a.id+"/search/"+strings.Repeat("x", 33), "", "", a.token), 400, httpx.KindBadRequest, anyDetails)
	if r := e.do("GET", "/user/"+a.id+"/search/"+strings.Repeat("x", 32), "", "", a.token); r.status != 200 {
		t.Fatalf("32-char pattern: %d", r.status)
	}
	wantError(t, e.do("GET", "/user/"+b.id+"/search/"+a.email, "", "", a.token), 403, httpx.KindForbidden, anyDetails)
	wantError(t, e.do("GET", "/user/"+a.id+"/search/"+b.email, "", "", ""), 401, httpx.KindUnAuthorized,
		ptr("/user/{user_id}/search/{pattern}"))
}

func testAPIPrefix(t *testing.T, e *env) {
	s := e.signUp(t, "api@example.com", "pw")
	r := e.do("POST", "/api/user/login", jsonBody(t, map[string]string{"account": s.email, "password": b64("pw")}), "", "")
	if r.status != 200 {
		t.Fatalf("/api/user/login: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/user/"+s.id, "", "", s.token); r.status != 200 {
		t.Fatalf("/api/user/{id}: %d %s", r.status, r.body)
	}
	wantError(t, e.do("GET", "/api/user/"+s.id, "", "", ""), 401, httpx.KindUnAuthorized, ptr("/api/user/{id}"))
}

func TestNewValidatesOptions(t *testing.T) {
	store := sqlite.OpenTest(t)
	tokens, err := auth.NewTokens([]byte("k"), store, nil)
	must(t, err)
	full := account.Options{Users: store, Tokens: tokens, Codes: auth.NewMemoryCodes(nil), Mailer: &recMailer{},
		WSAddr: func(context.Context) (string, error) { return "", nil }}
	if _, err := account.New(full); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	tests := []struct {
		name string
		edit func(o *account.Options)
	}{
		{"no users", func(o *account.Options) { o.Users = nil }},
		{"no tokens", func(o *account.Options) { o.Tokens = nil }},
		{"no codes", func(o *account.Options) { o.Codes = nil }},
		{"no mailer", func(o *account.Options) { o.Mailer = nil }},
		{"no ws addr", func(o *account.Options) { o.WSAddr = nil }},
		{"oauth without states", func(o *account.Options) { o.GitHub = &account.OAuthProvider{ClientID: "x"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := full
			tc.edit(&o)
			if _, err := account.New(o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestWSAddrFailureAndRegion(t *testing.T) {
	store := sqlite.OpenTest(t)
	var fail atomic.Bool
	var seenIP atomic.Value
	e := newEnv(t, store, func(o *account.Options) {
		o.WSAddr = func(context.Context) (string, error) {
			if fail.Load() {
				return "", fmt.Errorf("no websocket service available")
			}
			return wsAddr, nil
		}
		o.Region = func(_ context.Context, ip string) string { seenIP.Store(ip); return "内网IP" }
	})
	s := e.signUp(t, "r@example.com", "pw")
	if ip := seenIP.Load(); ip != "127.0.0.1" {
		t.Fatalf("region lookup got ip %v", ip)
	}
	r := e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": s.email, "password": b64("pw")}), "", "")
	if r.json(t)["user"].(map[string]any)["region"] != "内网IP" {
		t.Fatalf("region not returned: %s", r.body)
	}
	if u, _ := store.GetUser(context.Background(), s.id); u.Region == nil || *u.Region != "内网IP" {
		t.Fatalf("region not stored: %+v", u)
	}
	fail.Store(true)
	r = e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": s.email, "password": b64("pw")}), "", "")
	wantError(t, r, 500, httpx.KindServiceNotFound, anyDetails)
}
