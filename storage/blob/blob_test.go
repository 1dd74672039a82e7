package blob

import (
	"bytes"
	"errors"
	"image/png"
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/storage"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"V1StGXR8_Z5jdHi6B-myT", true},
		{"V1StGXR8_Z5jdHi6B-myT.png", true},
		{"V1StGXR8_Z5jdHi6B-myT.tar.gz", true},
		{"avatar1.png", true},
		{strings.Repeat("a", MaxNameLen), true},
		{strings.Repeat("a", MaxNameLen+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"a/b", false},
		{"a\\b", false},
		{"a\x00b", false},
		{"a..b", false},
		{".meta", false},
		{".tmp-123", false},
		{"name.", false},
		{"with space", false},
		{"caf\u00e9", false},
		{"a%2e%2e", false},
	}
	for _, tc := range tests {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, not ErrInvalidName", tc.name, err)
		}
	}
}

func TestBuckets(t *testing.T) {
	for _, b := range Buckets() {
		if !b.Valid() || CheckBucket(b) != nil {
			t.Errorf("%q not valid", b)
		}
	}
	for _, b := range []Bucket{"", "sandcat", "Files"} {
		if err := CheckBucket(b); !errors.Is(err, ErrInvalidBucket) {
			t.Errorf("CheckBucket(%q) = %v", b, err)
		}
	}
}

func TestDefaultAvatarsArePNGs(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range DefaultAvatarNames() {
		data, err := DefaultAvatar(n)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if b := img.Bounds(); b.Dx() != 128 || b.Dy() != 128 {
			t.Fatalf("%s: %v", n, b)
		}
		// Corners are transparent, the centre is opaque.
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
			t.Errorf("%s: corner alpha %d", n, a)
		}
		if _, _, _, a := img.At(64, 64).RGBA(); a != 0xffff {
			t.Errorf("%s: centre alpha %d", n, a)
		}
		if seen[string(data)] {
			t.Errorf("%s duplicates another default avatar", n)
		}
		seen[string(data)] = true
	}
	if _, err := DefaultAvatar("avatar4.png"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DefaultAvatar(avatar4.png) = %v", err)
	}
}
