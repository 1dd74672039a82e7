package minio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestEndpoint(t *testing.T) {
	tests := []struct {
		in     string
		useSSL bool
		host   string
		secure bool
		ok     bool
	}{
		{"127.0.0.1:9000", false, "127.0.0.1:9000", false, true},
		{"s3.example.com", true, "s3.example.com", true, true},
		{"http://127.0.0.1:9000", true, "127.0.0.1:9000", false, true},
		{"https://minio:9000/", false, "minio:9000", true, true},
		{"", false, "", false, false},
		{"ftp://minio:9000", false, "", false, false},
		{"http://minio:9000/bucket", false, "", false, false},
		{"http://", false, "", false, false},
	}
	for _, tc := range tests {
		host, secure, err := endpoint(tc.in, tc.useSSL)
		if (err == nil) != tc.ok || host != tc.host || secure != tc.secure {
			t.Errorf("endpoint(%q, %v) = %q, %v, %v; want %q, %v, ok=%v", tc.in, tc.useSSL, host, secure, err, tc.host, tc.secure, tc.ok)
		}
	}
}

func TestExactReader(t *testing.T) {
	tests := []struct {
		name     string
		r        io.Reader
		size     int64
		mismatch bool
	}{
		{"exact", strings.NewReader("abcdef"), 6, false},
		{"exact one byte at a time", iotest.OneByteReader(strings.NewReader("abcdef")), 6, false},
		{"exact with data and EOF together", iotest.DataErrReader(strings.NewReader("abcdef")), 6, false},
		{"empty", strings.NewReader(""), 0, false},
		{"short", strings.NewReader("abc"), 6, true},
		{"long", strings.NewReader("abcdefg"), 6, true},
		{"long when empty announced", strings.NewReader("a"), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &exactReader{r: tc.r, left: tc.size}
			got, err := io.ReadAll(e)
			if tc.mismatch {
				if !errors.Is(err, errSizeMismatch) {
					t.Fatalf("ReadAll = %q, %v; want a size mismatch", got, err)
				}
				// A consumer that reads exactly the announced size also fails.
				if int64(len(got)) >= tc.size && tc.size > 0 {
					t.Fatalf("handed out all %d announced bytes of a longer stream", len(got))
				}
				return
			}
			if err != nil || int64(len(got)) != tc.size {
				t.Fatalf("ReadAll = %q, %v", got, err)
			}
			// EOF is sticky.
			if n, err := e.Read(make([]byte, 4)); n != 0 || err != io.EOF {
				t.Fatalf("Read after EOF = %d, %v", n, err)
			}
		})
	}
	// A failing source keeps failing with its own error.
	boom := errors.New("boom")
	e := &exactReader{r: io.MultiReader(bytes.NewReader([]byte("ab")), iotest.ErrReader(boom)), left: 6}
	if _, err := io.ReadAll(e); !errors.Is(err, boom) {
		t.Fatalf("ReadAll = %v, want boom", err)
	}
	if _, err := e.Read(make([]byte, 1)); !errors.Is(err, boom) {
		t.Fatalf("second Read = %v", err)
	}
}
