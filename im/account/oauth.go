package account

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"golang.org/x/oauth2"
)

// Public endpoints used when the configuration leaves a URL empty.
const (
	gitHubAuthURL     = "https://github.com/login/oauth/authorize"
	gitHubTokenURL    = "https://github.com/login/oauth/access_token"
	gitHubUserInfoURL = "https://api.github.com/user"
	gitHubEmailURL    = "https://api.github.com/user/emails"
	googleAuthURL     = "https://accounts.google.com/o/oauth2/auth"
	googleTokenURL    = "https://oauth2.googleapis.com/token"
	googleUserInfoURL = "https://openidconnect.googleapis.com/v1/userinfo"
)

const (
	userAgent      = "SandCat-Auth"
	maxProfileBody = 1 << 20
	maxAvatarBytes = 5 << 20
)

// profile is what a provider tells about the user.
type profile struct {
	Email, Name, AvatarURL string
}

type oauthProvider struct {
	name    string // "github" or "google": the value its states are bound to
	cfg     oauth2.Config
	profile func(ctx context.Context, c *http.Client) (profile, error)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func newGitHub(p *OAuthProvider) *oauthProvider {
	if p == nil || p.ClientID == "" {
		return nil
	}
	userURL, emailURL := orDefault(p.UserInfoURL, gitHubUserInfoURL), orDefault(p.EmailURL, gitHubEmailURL)
	return &oauthProvider{
		name: "github",
		cfg: oauth2.Config{
			ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: p.RedirectURL,
			Endpoint: oauth2.Endpoint{AuthURL: orDefault(p.AuthURL, gitHubAuthURL), TokenURL: orDefault(p.TokenURL, gitHubTokenURL)},
			Scopes:   []string{"read:user", "user:email"},
		},
		profile: func(ctx context.Context, c *http.Client) (profile, error) {
			var emails []struct {
				Email    string `json:"email"`
				Primary  bool   `json:"primary"`
				Verified bool   `json:"verified"`
			}
			if err := getJSON(ctx, c, emailURL, &emails); err != nil {
				return profile{}, err
			}
			var pr profile
			for _, e := range emails {
				if e.Primary && e.Verified {
					pr.Email = e.Email
				}
			}
			var info struct {
				Login     string `json:"login"`
				Name      string `json:"name"`
				AvatarURL string `json:"avatar_url"`
			}
			if err := getJSON(ctx, c, userURL, &info); err != nil {
				return profile{}, err
			}
			pr.Name, pr.AvatarURL = orDefault(info.Name, info.Login), info.AvatarURL
			return pr, nil
		},
	}
}

func newGoogle(p *OAuthProvider) *oauthProvider {
	if p == nil || p.ClientID == "" {
		return nil
	}
	userURL := orDefault(p.UserInfoURL, googleUserInfoURL)
	return &oauthProvider{
		name: "google",
		cfg: oauth2.Config{
			ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: p.RedirectURL,
			Endpoint: oauth2.Endpoint{AuthURL: orDefault(p.AuthURL, googleAuthURL), TokenURL: orDefault(p.TokenURL, googleTokenURL)},
			Scopes:   []string{"openid", "email", "profile"},
		},
		profile: func(ctx context.Context, c *http.Client) (profile, error) {
			var info struct {
				Email         string `json:"email"`
				EmailVerified *bool  `json:"email_verified"`
				Name          string `json:"name"`
				Picture       string `json:"picture"`
			}
			if err := getJSON(ctx, c, userURL, &info); err != nil {
				return profile{}, err
			}
			pr := profile{Name: info.Name, AvatarURL: info.Picture}
			if info.EmailVerified == nil || *info.EmailVerified {
				pr.Email = info.Email
			}
			if pr.Name == "" {
				pr.Name, _, _ = strings.Cut(pr.Email, "@")
			}
			return pr, nil
		},
	}
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxProfileBody)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

func notConfigured(name string) error {
	return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "oauth provider %s is not configured", name)
}

// GET /user/auth/{provider}: 307 to the provider with a fresh single-use state.
func (h *Handlers) oauthStart(name string, p *oauthProvider) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if p == nil {
			return notConfigured(name)
		}
		var b [24]byte
		_, _ = rand.Read(b[:])
		state := base64.RawURLEncoding.EncodeToString(b[:])
		if err := h.states.Put(r.Context(), state, p.name, StateTTL); err != nil {
			return httpx.Internal(httpx.KindInternalServer, err)
		}
		http.Redirect(w, r, p.cfg.AuthCodeURL(state), http.StatusTemporaryRedirect)
		return nil
	}
}

// GET /user/auth/{provider}/callback?code=&state=: checks and consumes the
// state, exchanges the code, reads the verified e-mail, finds or creates the
// user, and answers like login.
func (h *Handlers) oauthCallback(name string, p *oauthProvider) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if p == nil {
			return notConfigured(name)
		}
		q := r.URL.Query()
		code, state := q.Get("code"), q.Get("state")
		if code == "" || state == "" {
			return httpx.Bad("code and state are required")
		}
		if err := h.states.Take(r.Context(), state, p.name); err != nil {
			if errors.Is(err, auth.ErrCodeExpired) || errors.Is(err, auth.ErrCodeInvalid) {
				return httpx.Bad("unknown or expired oauth state")
			}
			return httpx.Internal(httpx.KindInternalServer, err)
		}
		ctx := context.WithValue(r.Context(), oauth2.HTTPClient, h.client)
		tok, err := p.cfg.Exchange(ctx, code)
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) {
				h.log.WarnContext(ctx, "oauth code refused", "provider", name, "err", err)
				return httpx.Errorf(http.StatusUnauthorized, httpx.KindUnAuthorized, "oauth code refused by %s", name)
			}
			return httpx.Internal(httpx.KindInternalServer, fmt.Errorf("oauth exchange with %s: %w", name, err))
		}
		pr, err := p.profile(ctx, p.cfg.Client(ctx, tok))
		if err != nil {
			return httpx.Internal(httpx.KindInternalServer, fmt.Errorf("oauth profile from %s: %w", name, err))
		}
		if pr.Email == "" || checkEmail(pr.Email) != nil {
			return httpx.Errorf(http.StatusNotFound, httpx.KindNotFound, "no verified primary e-mail at %s", name)
		}
		if pr.Name == "" {
			pr.Name = pr.Email
		}
		if rs := []rune(pr.Name); len(rs) > maxName {
			pr.Name = string(rs[:maxName])
		}
		u, err := h.userOrCreate(r.Context(), pr.Email, pr.Name, func() string { return h.importAvatar(r.Context(), pr.AvatarURL) })
		if err != nil {
			return dbError(err)
		}
		return h.writeLogin(w, r, u)
	}
}

// avatarExt maps the sniffed image types accepted as avatars to a file extension.
func avatarExt(contentType string) string {
	switch contentType {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	}
	return ""
}

// importAvatar downloads url into the avatar store as "<nanoid>.<ext>" and
// returns the name, or the default avatar when anything fails.
func (h *Handlers) importAvatar(ctx context.Context, url string) string {
	if url == "" || h.avatars == nil {
		return h.defaultAvatar
	}
	name, err := h.downloadAvatar(ctx, url)
	if err != nil {
		h.log.WarnContext(ctx, "import oauth avatar", "url", url, "err", err)
		return h.defaultAvatar
	}
	return name
}

func (h *Handlers) downloadAvatar(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := h.client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAvatarBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxAvatarBytes {
		return "", fmt.Errorf("larger than %d bytes", maxAvatarBytes)
	}
	ct := http.DetectContentType(data)
	ext := avatarExt(ct)
	if ext == "" {
		return "", fmt.Errorf("not an image (%s)", ct)
	}
	name := ids.New() + ext
	if err := h.avatars.PutAvatar(ctx, name, ct, bytes.NewReader(data)); err != nil {
		return "", err
	}
	return name, nil
}
