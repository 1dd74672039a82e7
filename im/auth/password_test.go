package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestHashPasswordFormat(t *testing.T) {
	hash, salt, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)
	m := re.FindStringSubmatch(hash)
	if m == nil {
		t.Fatalf("hash %q is not the expected PHC string", hash)
	}
	if m[1] != salt {
		t.Fatalf("salt %q, hash salt %q", salt, m[1])
	}
	other, _, _ := HashPassword("correct horse")
	if other == hash {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

// rustArgon2Hash formats a hash exactly as the Rust argon2 crate's defaults
// (Argon2id v19, m=19456, t=2, p=1, 32-byte output, PHC with unpadded
// standard base64) do, computed here with golang.org/x/crypto/argon2 directly.
func rustArgon2Hash(password string, salt []byte) string {
	key := argon2.IDKey([]byte(password), salt, 2, 19456, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=19456,t=2,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func TestCheckPassword(t *testing.T) {
	own, _, err := HashPassword("pässwörd 1")
	if err != nil {
		t.Fatal(err)
	}
	rust := rustArgon2Hash("hunter2", []byte("0123456789abcdef"))
	tests := []struct {
		name, password, hash string
		want                 bool
		wantInvalid          bool
	}{
		{"own hash", "pässwörd 1", own, true, false},
		{"own hash wrong password", "pässwörd 2", own, false, false},
		{"original server hash", "hunter2", rust, true, false},
		{"original server hash wrong password", "hunter3", rust, false, false},
		{"empty hash (OAuth user)", "anything", "", false, false},
		{"empty hash, empty password", "", "", false, false},
		{"not PHC", "x", "plain", false, true},
		{"argon2i variant", "hunter2", strings.Replace(rust, "argon2id", "argon2i", 1), false, true},
		{"parallelism 0 must not panic", "hunter2", strings.Replace(rust, "p=1", "p=0", 1), false, true},
		{"huge memory refused", "hunter2", strings.Replace(rust, "m=19456", "m=4194304", 1), false, true},
		{"bad base64", "hunter2", rust[:len(rust)-3] + "!!!", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckPassword(tc.password, tc.hash)
			if got != tc.want {
				t.Fatalf("CheckPassword = %v, want %v (err %v)", got, tc.want, err)
			}
			if tc.wantInvalid != errors.Is(err, ErrInvalidHash) || (!tc.wantInvalid && err != nil) {
				t.Fatalf("err = %v, want invalid=%v", err, tc.wantInvalid)
			}
		})
	}
}
