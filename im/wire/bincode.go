package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every decoding error of this package (bincode
// and JSON): the input is not a valid encoding of the requested type.
var ErrMalformed = errors.New("wire: malformed input")

// DecodeError describes where and why a bincode decode failed. It wraps
// ErrMalformed, so errors.Is(err, ErrMalformed) holds.
type DecodeError struct {
	Type   string // Go type being decoded, e.g. "Msg", "GroupMember"
	Field  string // wire (snake_case) field name, e.g. "send_id"
	Offset int    // byte offset in the input where the field starts
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("wire: malformed %s.%s at offset %d: %s", e.Type, e.Field, e.Offset, e.Reason)
}

// Unwrap returns ErrMalformed.
func (e *DecodeError) Unwrap() error { return ErrMalformed }

// ---------------------------------------------------------------------------
// Encoding: bincode 1.x legacy config (little-endian, fixed-width integers,
// u64 length prefixes, 1-byte bool and Option tags).

func appendI32(b []byte, v int32) []byte  { return binary.LittleEndian.AppendUint32(b, uint32(v)) }
func appendI64(b []byte, v int64) []byte  { return binary.LittleEndian.AppendUint64(b, uint64(v)) }
func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendLen(b []byte, n int) []byte    { return binary.LittleEndian.AppendUint64(b, uint64(n)) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendString(b []byte, s string) []byte {
	b = appendLen(b, len(s))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = appendLen(b, len(p))
	return append(b, p...)
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return appendString(b, *s)
}

func appendStrings(b []byte, ss []string) []byte {
	b = appendLen(b, len(ss))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// ---------------------------------------------------------------------------
// Decoding. A decoder records the first error and returns zero values from
// then on, so decode functions read straight through and check d.err once.
// Every length prefix is checked against the remaining input before anything
// is allocated.

type decoder struct {
	b   []byte
	off int
	typ string // Go type name for error messages
	err error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = &DecodeError{Type: d.typ, Field: field, Offset: d.off, Reason: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

// take returns the next n bytes (aliasing the input) or nil on error.
func (d *decoder) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > d.remaining() {
		d.fail(field, "truncated: need %d bytes, have %d", n, d.remaining())
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

func (d *decoder) i32(field string) int32 {
	p := d.take(field, 4)
	if p == nil {
		return 0
	}
	return int32(binary.LittleEndian.Uint32(p))
}

func (d *decoder) i64(field string) int64 {
	p := d.take(field, 8)
	if p == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(p))
}

func (d *decoder) u16(field string) uint16 {
	p := d.take(field, 2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

// bool accepts exactly 0 or 1, as bincode does.
func (d *decoder) bool(field string) bool {
	p := d.take(field, 1)
	if p == nil {
		return false
	}
	switch p[0] {
	case 0:
		return false
	case 1:
		return true
	}
	d.off--
	d.fail(field, "invalid bool byte %#02x", p[0])
	return false
}

// some reads an Option tag: false for None, true for Some.
func (d *decoder) some(field string) bool {
	p := d.take(field, 1)
	if p == nil {
		return false
	}
	switch p[0] {
	case 0:
		return false
	case 1:
		return true
	}
	d.off--
	d.fail(field, "invalid option tag %#02x", p[0])
	return false
}

// length reads a u64 element count and checks that count elements of at
// least minElem encoded bytes each fit in the remaining input.
func (d *decoder) length(field string, minElem int) int {
	start := d.off
	p := d.take(field, 8)
	if p == nil {
		return 0
	}
	n := binary.LittleEndian.Uint64(p)
	rem := uint64(d.remaining())
	if minElem > 0 && n > rem/uint64(minElem) {
		d.off = start
		d.fail(field, "length %d exceeds remaining %d bytes", n, rem)
		return 0
	}
	return int(n)
}

// rawBytes reads a length-prefixed byte string, aliasing the input.
func (d *decoder) rawBytes(field string) []byte {
	n := d.length(field, 1)
	return d.take(field, n)
}

// rawString is rawBytes plus the UTF-8 check serde performs for String.
func (d *decoder) rawString(field string) []byte {
	start := d.off
	p := d.rawBytes(field)
	if d.err == nil && !utf8.Valid(p) {
		d.off = start
		d.fail(field, "invalid UTF-8 in string")
		return nil
	}
	return p
}

func (d *decoder) str(field string) string {
	return string(d.rawString(field))
}

func (d *decoder) optString(field string) *string {
	if !d.some(field) || d.err != nil {
		return nil
	}
	s := d.str(field)
	if d.err != nil {
		return nil
	}
	return &s
}

func (d *decoder) optU16(field string) *uint16 {
	if !d.some(field) || d.err != nil {
		return nil
	}
	v := d.u16(field)
	if d.err != nil {
		return nil
	}
	return &v
}

func (d *decoder) strings(field string) []string {
	n := d.length(field, 8)
	if d.err != nil {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str(field)
	}
	if d.err != nil {
		return nil
	}
	return ss
}

func (d *decoder) i64s(field string) []int64 {
	n := d.length(field, 8)
	if d.err != nil {
		return nil
	}
	vs := make([]int64, n)
	for i := range vs {
		vs[i] = d.i64(field)
	}
	if d.err != nil {
		return nil
	}
	return vs
}
