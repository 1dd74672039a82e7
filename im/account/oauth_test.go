package account_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sandcat-im/sandcat/im/account"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/local"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// provider is a local OAuth2 authorization server plus the user APIs of
// GitHub (/user, /user/emails) and Google (/userinfo), over real HTTP.
type provider struct {
	t   *testing.T
	srv *httptest.Server

	mu           sync.Mutex
	codes        map[string]string // authorization code -> access token
	tokens       map[string]bool
	lastRedirect string
	// what the APIs answer
	login, name, email string
	verified           bool
	avatarOK           bool
}

const clientID, clientSecret = "test-client", "test-secret"

func newProvider(t *testing.T) *provider {
	p := &provider{t: t, codes: map[string]string{}, tokens: map[string]bool{}, verified: true, avatarOK: true}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /user", p.api(func(w http.ResponseWriter) {
		_ = json.NewEncoder(w).Encode(map[string]any{"login": p.login, "name": p.name, "avatar_url": p.srv.URL + "/avatar.png"})
	}))
	mux.HandleFunc("GET /user/emails", p.api(func(w http.ResponseWriter) {
		_ = json.NewEncoder(w).Encode([]map[string]any{
			{"email": "secondary-" + p.email, "primary": false, "verified": true},
			{"email": p.email, "primary": true, "verified": p.verified},
		})
	}))
	mux.HandleFunc("GET /userinfo", p.api(func(w http.ResponseWriter) {
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": "1234", "email": p.email, "email_verified": p.verified,
			"name": p.name, "picture": p.srv.URL + "/avatar.png"})
	}))
	mux.HandleFunc("GET /avatar.png", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		ok := p.avatarOK
		p.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		var b bytes.Buffer
		_ = png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 2, 2)))
		_, _ = w.Write(b.Bytes())
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) set(fn func(p *provider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

func (p *provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != clientID || q.Get("response_type") != "code" || q.Get("state") == "" || q.Get("redirect_uri") == "" {
		http.Error(w, "bad authorize request "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	code := "code-" + ids.New()
	p.mu.Lock()
	p.codes[code] = "tok-" + ids.New()
	target := q.Get("redirect_uri") + "?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	p.lastRedirect = target
	p.mu.Unlock()
	http.Redirect(w, r, target, http.StatusFound)
}

func (p *provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	p.mu.Lock()
	tok, known := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code")) // single use
	if known {
		p.tokens[tok] = true
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if id != clientID || secret != clientSecret || r.PostForm.Get("grant_type") != "authorization_code" || !known {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"bad_verification_code"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600})
}

func (p *provider) api(write func(w http.ResponseWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		defer p.mu.Unlock()
		if !ok || !p.tokens[tok] || r.Header.Get("User-Agent") != "SandCat-Auth" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		write(w)
	}
}

// blobAvatars stores avatars in the real local blob store.
type blobAvatars struct{ s *local.Store }

func (b blobAvatars) PutAvatar(ctx context.Context, name, contentType string, r io.Reader) error {
	return b.s.Put(ctx, blob.Avatars, name, contentType, r, -1)
}

type oauthEnv struct {
	*env
	p     *provider
	blobs *local.Store
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	p := newProvider(t)
	blobs, err := local.Open(context.Background(), t.TempDir())
	must(t, err)
	e := newEnvURL(t, sqlite.OpenTest(t), func(o *account.Options, base string) {
		o.Avatars = blobAvatars{blobs}
		o.GitHub = &account.OAuthProvider{ClientID: clientID, ClientSecret: clientSecret,
			AuthURL: p.srv.URL + "/authorize", TokenURL: p.srv.URL + "/token", RedirectURL: base + "/user/auth/github/callback",
			UserInfoURL: p.srv.URL + "/user", EmailURL: p.srv.URL + "/user/emails"}
		o.Google = &account.OAuthProvider{ClientID: clientID, ClientSecret: clientSecret,
			AuthURL: p.srv.URL + "/authorize", TokenURL: p.srv.URL + "/token", RedirectURL: base + "/user/auth/google/callback",
			UserInfoURL: p.srv.URL + "/userinfo"}
	})
	return &oauthEnv{env: e, p: p, blobs: blobs}
}

// follow GETs path on the API server following redirects (API → provider →
// API callback), as a browser would.
func (e *oauthEnv) follow(t *testing.T, path string) resp {
	t.Helper()
	res, err := http.Get(e.srv.URL + path)
	must(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	must(t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *oauthEnv) lastRedirect() string {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return e.p.lastRedirect
}

func TestOAuthStartRedirect(t *testing.T) {
	e := newOAuthEnv(t)
	for _, tc := range []struct{ path, scope, callback string }{
		{"/user/auth/github", "read:user user:email", "/user/auth/github/callback"},
		{"/user/auth/google", "openid email profile", "/user/auth/google/callback"},
		{"/user/auth/wechat", "openid email profile", "/user/auth/google/callback"},
	} {
		r := e.do("GET", tc.path, "", "", "")
		if r.status != http.StatusTemporaryRedirect {
			t.Fatalf("%s: status %d", tc.path, r.status)
		}
		loc, err := url.Parse(r.header.Get("Location"))
		must(t, err)
		q := loc.Query()
		if loc.Path != "/authorize" || q.Get("client_id") != clientID || q.Get("scope") != tc.scope ||
			q.Get("response_type") != "code" || len(q.Get("state")) < 32 ||
			q.Get("redirect_uri") != e.srv.URL+tc.callback {
			t.Fatalf("%s: redirect %s", tc.path, loc)
		}
	}
	a := e.do("GET", "/user/auth/github", "", "", "").header.Get("Location")
	b := e.do("GET", "/user/auth/github", "", "", "").header.Get("Location")
	sa, _ := url.Parse(a)
	sb, _ := url.Parse(b)
	if sa.Query().Get("state") == sb.Query().Get("state") {
		t.Fatal("two logins got the same state")
	}
}

func TestOAuthGitHubNewUser(t *testing.T) {
	e := newOAuthEnv(t)
	e.p.set(func(p *provider) { p.login, p.name, p.email = "octocat", "The Octocat", "octo@example.com" })
	r := e.follow(t, "/user/auth/github")
	if r.status != 200 {
		t.Fatalf("github login: %d %s", r.status, r.body)
	}
	m := r.json(t)
	wantKeys(t, "login", m, "user", "token", "refresh_token", "ws_addr")
	u := m["user"].(map[string]any)
	wantKeys(t, "user", u, userKeys...)
	if u["email"] != "octo@example.com" || u["name"] != "The Octocat" || u["account"] != u["id"] || m["ws_addr"] != wsAddr {
		t.Fatalf("github user %s", r.body)
	}
	c := claims(t, m["token"].(string))
	if c["sub"] != u["id"] {
		t.Fatalf("token sub %v", c["sub"])
	}
	if rr := e.do("GET", "/user/"+u["id"].(string), "", "", m["token"].(string)); rr.status != 200 {
		t.Fatalf("oauth token refused: %d", rr.status)
	}
	// The avatar was imported into the avatar bucket.
	avatar := u["avatar"].(string)
	if !strings.HasSuffix(avatar, ".png") || len(avatar) != ids.Size+4 {
		t.Fatalf("avatar %q", avatar)
	}
	rc, info, err := e.blobs.Get(context.Background(), blob.Avatars, avatar)
	must(t, err)
	data, _ := io.ReadAll(rc)
	rc.Close()
	if info.ContentType != "image/png" || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("stored avatar %q %q", info.ContentType, data[:8])
	}
	// The user has no password: a password login is a clean 404.
	stored, err := e.store.GetUser(context.Background(), u["id"].(string))
	must(t, err)
	if stored.Password != "" || stored.Salt != "" {
		t.Fatalf("oauth user has a password: %+v", stored)
	}
	wantError(t, e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": "octo@example.com", "password": b64("x")}), "", ""),
		404, httpx.KindNotFound, nil)

	// The callback cannot be replayed: the state is single use.
	replay := e.lastRedirect()
	rr, err := http.Get(replay)
	must(t, err)
	body, _ := io.ReadAll(rr.Body)
	rr.Body.Close()
	wantError(t, resp{status: rr.StatusCode, header: rr.Header, body: body}, 400, httpx.KindBadRequest, anyDetails)

	// Logging in again finds the same user.
	r = e.follow(t, "/user/auth/github")
	if r.status != 200 || r.json(t)["user"].(map[string]any)["id"] != u["id"] {
		t.Fatalf("second github login: %d %s", r.status, r.body)
	}
}

func TestOAuthExistingUserAndFallbackAvatar(t *testing.T) {
	e := newOAuthEnv(t)
	s := e.signUp(t, "known@example.com", "pw")
	e.p.set(func(p *provider) { p.login, p.name, p.email = "known", "", "known@example.com" })
	r := e.follow(t, "/user/auth/github")
	if r.status != 200 || r.json(t)["user"].(map[string]any)["id"] != s.id {
		t.Fatalf("github login of a registered e-mail: %d %s", r.status, r.body)
	}
	// The password still works.
	e.login(t, "known@example.com", "pw")

	// A new user whose avatar cannot be fetched gets the default avatar; the login name stands in for the name.
	e.p.set(func(p *provider) {
		p.login, p.name, p.email, p.avatarOK = "noavatar", "", "noavatar@example.com", false
	})
	r = e.follow(t, "/user/auth/github")
	if r.status != 200 {
		t.Fatalf("login without avatar: %d %s", r.status, r.body)
	}
	u := r.json(t)["user"].(map[string]any)
	if u["avatar"] != account.DefaultAvatar || u["name"] != "noavatar" {
		t.Fatalf("user %v", u)
	}
}

func TestOAuthGoogle(t *testing.T) {
	e := newOAuthEnv(t)
	e.p.set(func(p *provider) { p.name, p.email = "Gina", "gina@example.com" })
	for _, start := range []string{"/user/auth/google", "/user/auth/wechat"} {
		r := e.follow(t, start)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", start, r.status, r.body)
		}
		u := r.json(t)["user"].(map[string]any)
		if u["email"] != "gina@example.com" || u["name"] != "Gina" || !strings.HasSuffix(u["avatar"].(string), ".png") {
			t.Fatalf("%s: user %v", start, u)
		}
	}
	// The same state also works at the legacy /user/auth/wechat/callback.
	loc, _ := url.Parse(e.do("GET", "/user/auth/wechat", "", "", "").header.Get("Location"))
	state := loc.Query().Get("state")
	code := "code-" + ids.New()
	e.p.set(func(p *provider) { p.codes[code] = "tok-" + ids.New() })
	r := e.do("GET", "/user/auth/wechat/callback?"+url.Values{"code": {code}, "state": {state}}.Encode(), "", "", "")
	if r.status != 200 || r.json(t)["user"].(map[string]any)["email"] != "gina@example.com" {
		t.Fatalf("wechat callback: %d %s", r.status, r.body)
	}
	// An unverified Google e-mail is refused.
	e.p.set(func(p *provider) { p.email, p.verified = "unverified@example.com", false })
	wantError(t, e.follow(t, "/user/auth/google"), 404, httpx.KindNotFound, anyDetails)
	if _, err := e.store.UserByEmail(context.Background(), "unverified@example.com"); err != storage.ErrNotFound {
		t.Fatalf("user created for an unverified e-mail: %v", err)
	}
}

func TestOAuthCallbackErrors(t *testing.T) {
	e := newOAuthEnv(t)
	e.p.set(func(p *provider) { p.login, p.email = "x", "x@example.com" })
	startState := func(path string) string {
		loc, err := url.Parse(e.do("GET", path, "", "", "").header.Get("Location"))
		must(t, err)
		return loc.Query().Get("state")
	}
	validCode := func() string {
		code := "code-" + ids.New()
		e.p.set(func(p *provider) { p.codes[code] = "tok-" + ids.New() })
		return code
	}
	cb := func(provider, code, state string) string {
		return "/user/auth/" + provider + "/callback?" + url.Values{"code": {code}, "state": {state}}.Encode()
	}
	tests := []struct {
		name   string
		path   func() string
		status int
		kind   string
	}{
		{"missing code", func() string { return cb("github", "", startState("/user/auth/github")) }, 400, httpx.KindBadRequest},
		{"missing state", func() string { return cb("github", validCode(), "") }, 400, httpx.KindBadRequest},
		{"unknown state", func() string { return cb("github", validCode(), "forged") }, 400, httpx.KindBadRequest},
		{"state of another provider", func() string { return cb("github", validCode(), startState("/user/auth/google")) }, 400, httpx.KindBadRequest},
		{"code refused by the provider", func() string { return cb("github", "bogus", startState("/user/auth/github")) }, 401, httpx.KindUnAuthorized},
		{"no verified primary e-mail", func() string {
			e.p.set(func(p *provider) { p.verified = false })
			return cb("github", validCode(), startState("/user/auth/github"))
		}, 404, httpx.KindNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do("GET", tc.path(), "", "", ""), tc.status, tc.kind, anyDetails)
		})
	}
}

func TestOAuthNotConfigured(t *testing.T) {
	e := newEnv(t, sqlite.OpenTest(t), nil)
	for _, path := range []string{"/user/auth/github", "/user/auth/github/callback?code=a&state=b",
		"/user/auth/google", "/user/auth/wechat/callback?code=a&state=b"} {
		wantError(t, e.do("GET", path, "", "", ""), 404, httpx.KindNotFound, anyDetails)
	}
}
