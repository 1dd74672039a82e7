package ids

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if len(id) != Size {
			t.Fatalf("len(%q) = %d", id, len(id))
		}
		for _, c := range id {
			if !strings.ContainsRune(alphabet, c) {
				t.Fatalf("%q has %q outside the alphabet", id, c)
			}
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestFromKey(t *testing.T) {
	tests := []struct{ a, b string }{
		{"matrix:$event1", "matrix:$event2"},
		{"", "x"},
	}
	for _, tc := range tests {
		a, a2, b := FromKey(tc.a), FromKey(tc.a), FromKey(tc.b)
		if a != a2 {
			t.Fatalf("FromKey(%q) not stable: %q, %q", tc.a, a, a2)
		}
		if a == b {
			t.Fatalf("FromKey(%q) == FromKey(%q) = %q", tc.a, tc.b, a)
		}
		for _, id := range []string{a, b} {
			if len(id) != Size || strings.Trim(id, alphabet) != "" {
				t.Fatalf("FromKey gave %q: not a %d-character id", id, Size)
			}
		}
	}
}
