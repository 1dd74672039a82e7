package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// JSON form of Msg (text frames, HTTP bodies): serde names, every field
// present, related_msg_id null when absent, and content as a JSON array of
// numbers ("content":[104,105], [] when empty), never base64.

// AppendJSON appends the JSON encoding of m to dst. It is what MarshalJSON
// uses; call it directly on hot paths to avoid encoding/json's re-validation.
// String escaping matches encoding/json (HTML-safe, invalid UTF-8 replaced
// by U+FFFD).
func (m *Msg) AppendJSON(dst []byte) []byte {
	b := append(dst, `{"send_id":`...)
	b = appendJSONString(b, m.SendID)
	b = append(b, `,"receiver_id":`...)
	b = appendJSONString(b, m.ReceiverID)
	b = append(b, `,"local_id":`...)
	b = appendJSONString(b, m.LocalID)
	b = append(b, `,"server_id":`...)
	b = appendJSONString(b, m.ServerID)
	b = append(b, `,"create_time":`...)
	b = strconv.AppendInt(b, m.CreateTime, 10)
	b = append(b, `,"send_time":`...)
	b = strconv.AppendInt(b, m.SendTime, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, m.Seq, 10)
	b = append(b, `,"msg_type":`...)
	b = strconv.AppendInt(b, int64(m.MsgType), 10)
	b = append(b, `,"content_type":`...)
	b = strconv.AppendInt(b, int64(m.ContentType), 10)
	b = append(b, `,"content":[`...)
	for i, c := range m.Content {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(c), 10)
	}
	b = append(b, `],"is_read":`...)
	b = strconv.AppendBool(b, m.IsRead)
	b = append(b, `,"group_id":`...)
	b = appendJSONString(b, m.GroupID)
	b = append(b, `,"platform":`...)
	b = strconv.AppendInt(b, int64(m.Platform), 10)
	b = append(b, `,"avatar":`...)
	b = appendJSONString(b, m.Avatar)
	b = append(b, `,"nickname":`...)
	b = appendJSONString(b, m.Nickname)
	b = append(b, `,"related_msg_id":`...)
	if m.RelatedMsgID == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, *m.RelatedMsgID)
	}
	b = append(b, `,"send_seq":`...)
	b = strconv.AppendInt(b, m.SendSeq, 10)
	return append(b, '}')
}

// jsonSizeHint estimates the JSON length of m to size the output buffer.
func (m *Msg) jsonSizeHint() int {
	n := 300 + len(m.SendID) + len(m.ReceiverID) + len(m.LocalID) + len(m.ServerID) +
		len(m.GroupID) + len(m.Avatar) + len(m.Nickname) + 4*len(m.Content)
	if m.RelatedMsgID != nil {
		n += len(*m.RelatedMsgID)
	}
	return n
}

// MarshalJSON implements json.Marshaler. It has a value receiver so that
// Msg values (not only pointers) get the number-array content encoding.
func (m Msg) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(make([]byte, 0, m.jsonSizeHint())), nil
}

// UnmarshalJSON implements json.Unmarshaler. m is reset first; missing fields
// keep their zero value (more lenient than the original server, which
// requires every non-optional field). content must be an array of integers
// 0..255 or null/missing (empty). JSON null leaves m unchanged.
func (m *Msg) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	v, err := decodeJSON(data)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func decodeJSON(data []byte) (Msg, error) {
	type plain Msg // no methods: no recursion into UnmarshalJSON
	var aux struct {
		*plain
		Content jsonContent `json:"content"` // shadows plain.Content
	}
	var v Msg
	aux.plain = (*plain)(&v)
	if err := json.Unmarshal(data, &aux); err != nil {
		return Msg{}, err
	}
	v.Content = aux.Content
	return v, nil
}

// DecodeJSONMsg decodes a JSON Msg (a WebSocket text frame). Errors wrap
// ErrMalformed.
func DecodeJSONMsg(b []byte) (Msg, error) {
	m, err := decodeJSON(b)
	if err != nil {
		return Msg{}, fmt.Errorf("%w: json Msg: %w", ErrMalformed, err)
	}
	return m, nil
}

// jsonContent decodes a JSON array of byte values.
type jsonContent []byte

func (c *jsonContent) UnmarshalJSON(data []byte) error {
	i := skipWS(data, 0)
	if i < len(data) && data[i] == 'n' { // null (encoding/json has validated syntax)
		*c = nil
		return nil
	}
	if i >= len(data) || data[i] != '[' {
		return fmt.Errorf("content: want an array of numbers, got %.20q", data)
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == ']' {
		*c = nil
		return nil
	}
	out := make([]byte, 0, len(data)/2) // at least 2 input bytes per element
	for {
		v, j := 0, i
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			v = v*10 + int(data[j]-'0')
			if v > 255 {
				return fmt.Errorf("content: element %d out of byte range", len(out))
			}
			j++
		}
		if j == i {
			return fmt.Errorf("content: element %d is not an integer 0..255", len(out))
		}
		out = append(out, byte(v))
		i = skipWS(data, j)
		if i >= len(data) {
			return fmt.Errorf("content: unterminated array")
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case ']':
			*c = out
			return nil
		default:
			return fmt.Errorf("content: element %d is not an integer 0..255", len(out)-1)
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping like encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
