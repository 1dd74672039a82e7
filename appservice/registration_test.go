package appservice_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/appservice"
)

func TestRegistrationRoundTrip(t *testing.T) {
	o := appservice.RegistrationOptions{ID: "sandcat", URL: "https://bridge.internal:29400", ServerName: "example.org:8448",
		SenderLocalpart: "sandcat_bot", UserPrefix: "sandcat_", AliasPrefix: "sc_"}
	reg, err := appservice.NewRegistration(o)
	if err != nil {
		t.Fatal(err)
	}
	// The bot already matches the puppet namespace: no second entry.
	if len(reg.Namespaces.UserIDs) != 1 || reg.Namespaces.UserIDs[0].Regex != `@sandcat_.*:example\.org:8448` {
		t.Fatalf("user namespaces %+v", reg.Namespaces.UserIDs)
	}
	if got := reg.Namespaces.RoomAliases[0].Regex; got != `#sc_.*:example\.org:8448` {
		t.Fatalf("alias namespace %q", got)
	}
	b, err := appservice.MarshalRegistration(reg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := appservice.ParseRegistration(b)
	if err != nil {
		t.Fatal(err)
	}
	back.Namespaces.RoomIDs = nil // written as an explicit empty list
	if !reflect.DeepEqual(back, reg) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, reg)
	}
	if c := appservice.NewConfigSection(reg, o, "http://hs:8008"); c.Listen != ":29400" || c.ASToken != reg.AppToken {
		t.Fatalf("config section %+v", c)
	}
}

func TestNewRegistrationRejects(t *testing.T) {
	good := appservice.RegistrationOptions{ID: "sandcat", URL: "http://127.0.0.1:29400", ServerName: "example.org",
		SenderLocalpart: "sandcatbot", UserPrefix: "sandcat_", AliasPrefix: "sandcat_"}
	cases := []struct {
		name string
		edit func(o *appservice.RegistrationOptions)
		want string
	}{
		{"no id", func(o *appservice.RegistrationOptions) { o.ID = "" }, "id"},
		{"relative url", func(o *appservice.RegistrationOptions) { o.URL = "/x" }, "url"},
		{"ftp url", func(o *appservice.RegistrationOptions) { o.URL = "ftp://h:1" }, "url"},
		{"no server name", func(o *appservice.RegistrationOptions) { o.ServerName = "" }, "server name"},
		{"server name with @", func(o *appservice.RegistrationOptions) { o.ServerName = "a@b" }, "server name"},
		{"empty user prefix", func(o *appservice.RegistrationOptions) { o.UserPrefix = "" }, "user prefix"},
		{"alias prefix with #", func(o *appservice.RegistrationOptions) { o.AliasPrefix = "#x" }, "alias prefix"},
		{"bot with capitals", func(o *appservice.RegistrationOptions) { o.SenderLocalpart = "Bot" }, "sender localpart"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			if _, err := appservice.NewRegistration(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := appservice.NewRegistration(good); err != nil {
		t.Fatal(err)
	}
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		tok := appservice.NewToken()
		if len(tok) != appservice.TokenLength || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Fatalf("token %q", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}
