package appservice

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	mas "maunium.net/go/mautrix/appservice"
)

// RegistrationOptions are the inputs of NewRegistration.
type RegistrationOptions struct {
	ID              string // registration id (config appservice.id)
	URL             string // where the homeserver reaches the bridge, e.g. http://127.0.0.1:29400
	ServerName      string // the homeserver's server name (the part after ':' in user ids)
	SenderLocalpart string // the bridge bot's localpart
	UserPrefix      string // localpart prefix of Sandcat puppets
	AliasPrefix     string // alias localpart prefix of portals
}

// TokenLength is the length of the generated as_token and hs_token.
const TokenLength = 64

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewToken returns a random token of TokenLength letters and digits.
func NewToken() string {
	out := make([]byte, 0, TokenLength)
	var buf [2 * TokenLength]byte
	for len(out) < TokenLength {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand)
		for _, b := range buf {
			// 248 = 4*62: reject the tail to keep the choice uniform
			if b < 248 && len(out) < TokenLength {
				out = append(out, tokenAlphabet[b%62])
			}
		}
	}
	return string(out)
}

// localpartRe is the grammar of user-id localparts (Matrix spec, historical
// characters excluded) that the prefixes and the bot's localpart must follow.
var localpartRe = regexp.MustCompile(`^[a-z0-9._=/+-]*$`)

// NewRegistration builds a registration with fresh random tokens: exclusive
// user namespaces for the puppets (@<user_prefix>.*:<server>) and the bot,
// an exclusive alias namespace for the portals (#<alias_prefix>.*:<server>),
// rate_limited false and receive_ephemeral true.
func NewRegistration(o RegistrationOptions) (*mas.Registration, error) {
	var errs []error
	if o.ID == "" {
		errs = append(errs, errors.New("id is empty"))
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q is not an http(s) URL", o.URL))
	}
	if o.ServerName == "" || strings.ContainsAny(o.ServerName, "/@#! ") {
		errs = append(errs, fmt.Errorf("server name %q is not a Matrix server name", o.ServerName))
	}
	for _, f := range []struct{ name, v string }{
		{"sender localpart", o.SenderLocalpart}, {"user prefix", o.UserPrefix}, {"alias prefix", o.AliasPrefix},
	} {
		if f.v == "" || !localpartRe.MatchString(f.v) {
			errs = append(errs, fmt.Errorf("%s %q must be non-empty lower-case letters, digits or ._=/+-", f.name, f.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("appservice: registration: %w", err)
	}
	server := regexp.QuoteMeta(o.ServerName)
	rateLimited := false
	reg := &mas.Registration{
		ID:              o.ID,
		URL:             o.URL,
		AppToken:        NewToken(),
		ServerToken:     NewToken(),
		SenderLocalpart: o.SenderLocalpart,
		RateLimited:     &rateLimited,
		EphemeralEvents: true,
	}
	reg.Namespaces.UserIDs = mas.NamespaceList{
		{Regex: "@" + regexp.QuoteMeta(o.UserPrefix) + ".*:" + server, Exclusive: true},
	}
	if !strings.HasPrefix(o.SenderLocalpart, o.UserPrefix) {
		reg.Namespaces.UserIDs = append(reg.Namespaces.UserIDs,
			mas.Namespace{Regex: "@" + regexp.QuoteMeta(o.SenderLocalpart) + ":" + server, Exclusive: true})
	}
	reg.Namespaces.RoomAliases = mas.NamespaceList{
		{Regex: "#" + regexp.QuoteMeta(o.AliasPrefix) + ".*:" + server, Exclusive: true},
	}
	return reg, nil
}

// registrationFile is the YAML layout of a registration (the spec's field
// names; rooms written even when empty).
type registrationFile struct {
	ID               string             `yaml:"id"`
	URL              string             `yaml:"url"`
	ASToken          string             `yaml:"as_token"`
	HSToken          string             `yaml:"hs_token"`
	SenderLocalpart  string             `yaml:"sender_localpart"`
	RateLimited      bool               `yaml:"rate_limited"`
	ReceiveEphemeral bool               `yaml:"receive_ephemeral"`
	Namespaces       registrationSpaces `yaml:"namespaces"`
	Protocols        []string           `yaml:"protocols,omitempty"`
	SoruEphemeral    bool               `yaml:"de.sorunome.msc2409.push_ephemeral,omitempty"`
	MSC3202          bool               `yaml:"org.matrix.msc3202,omitempty"`
	MSC4190          bool               `yaml:"io.element.msc4190,omitempty"`
}

type registrationSpaces struct {
	Users   []mas.Namespace `yaml:"users"`
	Aliases []mas.Namespace `yaml:"aliases"`
	Rooms   []mas.Namespace `yaml:"rooms"`
}

// MarshalRegistration renders reg as the YAML file a homeserver loads, after
// a comment header.
func MarshalRegistration(reg *mas.Registration) ([]byte, error) {
	f := registrationFile{
		ID: reg.ID, URL: reg.URL, ASToken: reg.AppToken, HSToken: reg.ServerToken,
		SenderLocalpart: reg.SenderLocalpart, RateLimited: reg.RateLimited != nil && *reg.RateLimited,
		ReceiveEphemeral: reg.EphemeralEvents, Protocols: reg.Protocols,
		SoruEphemeral: reg.SoruEphemeralEvents, MSC3202: reg.MSC3202, MSC4190: reg.MSC4190,
		Namespaces: registrationSpaces{
			Users:   nonNil(reg.Namespaces.UserIDs),
			Aliases: nonNil(reg.Namespaces.RoomAliases),
			Rooms:   nonNil(reg.Namespaces.RoomIDs),
		},
	}
	if reg.RateLimited == nil {
		f.RateLimited = true // what Synapse assumes for a missing value
	}
	body, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("appservice: marshal registration: %w", err)
	}
	head := "# Matrix application-service registration of the Sandcat bridge, written by\n" +
		"# `sandcat appservice registration`. It holds live secrets: give it to the homeserver\n" +
		"# only (Synapse: list it under app_service_config_files and restart).\n"
	return append([]byte(head), body...), nil
}

func nonNil(l mas.NamespaceList) []mas.Namespace {
	if l == nil {
		return []mas.Namespace{}
	}
	return l
}

// ParseRegistration reads a registration file (YAML).
func ParseRegistration(b []byte) (*mas.Registration, error) {
	var reg mas.Registration
	if err := yaml.Unmarshal(b, &reg); err != nil {
		return nil, fmt.Errorf("appservice: parse registration: %w", err)
	}
	return &reg, nil
}

// ConfigSection is the `appservice:` section of Sandcat's config.yml that
// matches a registration.
type ConfigSection struct {
	ID              string `yaml:"id"`
	Listen          string `yaml:"listen"`
	HomeserverURL   string `yaml:"homeserver_url"`
	HomeserverName  string `yaml:"homeserver_name"`
	ASToken         string `yaml:"as_token"`
	HSToken         string `yaml:"hs_token"`
	SenderLocalpart string `yaml:"sender_localpart"`
	UserPrefix      string `yaml:"user_prefix"`
	AliasPrefix     string `yaml:"alias_prefix"`
}

// NewConfigSection derives the config section of a registration made from o.
// listen is the host:port of the registration url when the host is an IP
// address or localhost, else ":<port>" (all interfaces: the url names this
// machine as the homeserver sees it, e.g. a container name).
func NewConfigSection(reg *mas.Registration, o RegistrationOptions, homeserverURL string) ConfigSection {
	listen := ""
	if u, err := url.Parse(reg.URL); err == nil {
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		if host == "localhost" || net.ParseIP(host) != nil {
			listen = net.JoinHostPort(host, port)
		} else {
			listen = ":" + port
		}
	}
	return ConfigSection{
		ID: reg.ID, Listen: listen, HomeserverURL: homeserverURL, HomeserverName: o.ServerName,
		ASToken: reg.AppToken, HSToken: reg.ServerToken, SenderLocalpart: reg.SenderLocalpart,
		UserPrefix: o.UserPrefix, AliasPrefix: o.AliasPrefix,
	}
}

// MarshalConfigSection renders c as `appservice:` YAML for config.yml.
func MarshalConfigSection(c ConfigSection) ([]byte, error) {
	b, err := yaml.Marshal(map[string]ConfigSection{"appservice": c})
	if err != nil {
		return nil, fmt.Errorf("appservice: marshal config section: %w", err)
	}
	return b, nil
}
