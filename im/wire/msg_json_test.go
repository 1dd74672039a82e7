package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// msgMirror is Msg as encoding/json would write it with content as a list
// of numbers; used to check AppendJSON against the standard library.
type msgMirror struct {
	SendID       string  `json:"send_id"`
	ReceiverID   string  `json:"receiver_id"`
	LocalID      string  `json:"local_id"`
	ServerID     string  `json:"server_id"`
	CreateTime   int64   `json:"create_time"`
	SendTime     int64   `json:"send_time"`
	Seq          int64   `json:"seq"`
	MsgType      int32   `json:"msg_type"`
	ContentType  int32   `json:"content_type"`
	Content      []int   `json:"content"`
	IsRead       bool    `json:"is_read"`
	GroupID      string  `json:"group_id"`
	Platform     int32   `json:"platform"`
	Avatar       string  `json:"avatar"`
	Nickname     string  `json:"nickname"`
	RelatedMsgID *string `json:"related_msg_id"`
	SendSeq      int64   `json:"send_seq"`
}

func mirror(m Msg) msgMirror {
	c := make([]int, len(m.Content))
	for i, b := range m.Content {
		c[i] = int(b)
	}
	return msgMirror{m.SendID, m.ReceiverID, m.LocalID, m.ServerID, m.CreateTime, m.SendTime, m.Seq,
		int32(m.MsgType), m.ContentType, c, m.IsRead, m.GroupID, m.Platform, m.Avatar, m.Nickname,
		m.RelatedMsgID, m.SendSeq}
}

var msgJSONKeys = []string{"send_id", "receiver_id", "local_id", "server_id", "create_time", "send_time",
	"seq", "msg_type", "content_type", "content", "is_read", "group_id", "platform", "avatar", "nickname",
	"related_msg_id", "send_seq"}

func TestMsgMarshalJSONExact(t *testing.T) {
	m := Msg{SendID: "a", Content: []byte("hi"), MsgType: MsgTypeRead, IsRead: true, SendSeq: -2}
	want := `{"send_id":"a","receiver_id":"","local_id":"","server_id":"","create_time":0,"send_time":0,"seq":0,` +
		`"msg_type":23,"content_type":0,"content":[104,105],"is_read":true,"group_id":"","platform":0,` +
		`"avatar":"","nickname":"","related_msg_id":null,"send_seq":-2}`
	got, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("json:\n got %s\nwant %s", got, want)
	}
}

func TestMsgMarshalJSONMatchesStdlib(t *testing.T) {
	weird := "q\"b\\s/\n\r\t\b\f\x00\x1f<>&\u2028\u2029é世😀\xff\xc3(end"
	tests := []struct {
		name string
		msg  Msg
	}{
		{"zero", Msg{}},
		{"full", fullMsg()},
		{"empty non-nil content", Msg{Content: []byte{}}},
		{"all byte values", Msg{Content: func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()}},
		{"escaping", Msg{SendID: weird, ReceiverID: weird, LocalID: weird, ServerID: weird, GroupID: weird,
			Avatar: weird, Nickname: weird, RelatedMsgID: &weird}},
		{"extremes", Msg{CreateTime: -1 << 63, SendTime: 1<<63 - 1, MsgType: -1, ContentType: 1<<31 - 1, Platform: -1 << 31}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(mirror(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string][]byte{
				"AppendJSON":      tt.msg.AppendJSON(nil),
				"MarshalJSON":     must(tt.msg.MarshalJSON()),
				"json.Marshal(v)": must(json.Marshal(tt.msg)),
				"json.Marshal(p)": must(json.Marshal(&tt.msg)),
			} {
				if !bytes.Equal(got, want) {
					t.Errorf("%s:\n got %s\nwant %s", name, got, want)
				}
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestMsgJSONAllFieldsInOrder(t *testing.T) {
	for _, m := range []Msg{{}, fullMsg()} {
		b := m.AppendJSON(nil)
		dec := json.NewDecoder(bytes.NewReader(b))
		if tok, _ := dec.Token(); tok != json.Delim('{') {
			t.Fatalf("not an object: %s", b)
		}
		var keys []string
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k.(string))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			if k == "content" && v[0] != '[' {
				t.Fatalf("content is %s, want an array", v)
			}
			if k == "related_msg_id" && m.RelatedMsgID == nil && string(v) != "null" {
				t.Fatalf("related_msg_id is %s, want null", v)
			}
		}
		if strings.Join(keys, ",") != strings.Join(msgJSONKeys, ",") {
			t.Fatalf("keys = %v, want %v", keys, msgJSONKeys)
		}
	}
}

func TestMsgJSONInContainers(t *testing.T) {
	m := Msg{Content: []byte{1, 2}}
	type wrapper struct {
		M  Msg            `json:"m"`
		P  *Msg           `json:"p"`
		L  []Msg          `json:"l"`
		Mp map[string]Msg `json:"mp"`
	}
	b, err := json.Marshal(wrapper{M: m, P: &m, L: []Msg{m}, Mp: map[string]Msg{"k": m}})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"content":[1,2]`); n != 4 {
		t.Fatalf("content as number array in %d of 4 places: %s", n, b)
	}
	var w wrapper
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.M.Content, m.Content) || !bytes.Equal(w.P.Content, m.Content) ||
		!bytes.Equal(w.L[0].Content, m.Content) || !bytes.Equal(w.Mp["k"].Content, m.Content) {
		t.Fatalf("decoded wrapper = %+v", w)
	}
}

func TestDecodeJSONMsg(t *testing.T) {
	full := fullMsg()
	tests := []struct {
		name string
		in   string
		want Msg
	}{
		{"round trip full", string(full.AppendJSON(nil)), full},
		{"content null", `{"send_id":"a","content":null}`, Msg{SendID: "a"}},
		{"content missing", `{"send_id":"a"}`, Msg{SendID: "a"}},
		{"content empty", `{"content":[]}`, Msg{}},
		{"content with spaces", `{"content": [ 1 , 2,255 ] }`, Msg{Content: []byte{1, 2, 255}}},
		{"content zero", `{"content":[0]}`, Msg{Content: []byte{0}}},
		{"related null", `{"related_msg_id":null}`, Msg{}},
		{"related some", `{"related_msg_id":"x"}`, Msg{RelatedMsgID: ptr("x")}},
		{"related empty", `{"related_msg_id":""}`, Msg{RelatedMsgID: ptr("")}},
		{"unknown fields ignored", `{"msg_type":1,"extra":{"a":[1]}}`, Msg{MsgType: MsgTypeGroupMsg}},
		{"escapes", `{"nickname":"a\u00e9\n\"<"}`, Msg{Nickname: "aé\n\"<"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSONMsg([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeJSONMsg: %v", err)
			}
			if !msgEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			var m Msg
			if err := json.Unmarshal([]byte(tt.in), &m); err != nil || !msgEqual(m, tt.want) {
				t.Fatalf("json.Unmarshal = %+v, %v", m, err)
			}
		})
	}
}

func TestDecodeJSONMsgErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"not json", `{`},
		{"content 256", `{"content":[256]}`},
		{"content 1000", `{"content":[1000]}`},
		{"content negative", `{"content":[-1]}`},
		{"content float", `{"content":[1.5]}`},
		{"content exponent", `{"content":[1e2]}`},
		{"content base64 string", `{"content":"aGk="}`},
		{"content object", `{"content":{}}`},
		{"content nested", `{"content":[[1]]}`},
		{"content string element", `{"content":["1"]}`},
		{"content trailing comma", `{"content":[1,]}`},
		{"wrong type", `{"seq":"1"}`},
		{"array", `[1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeJSONMsg([]byte(tt.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestMsgUnmarshalJSONResets(t *testing.T) {
	m := fullMsg()
	if err := json.Unmarshal([]byte(`{"send_id":"b"}`), &m); err != nil {
		t.Fatal(err)
	}
	if !msgEqual(m, Msg{SendID: "b"}) {
		t.Fatalf("UnmarshalJSON did not reset: %+v", m)
	}
	m = fullMsg()
	if err := json.Unmarshal([]byte(`null`), &m); err != nil || !msgEqual(m, fullMsg()) {
		t.Fatalf("null changed the Msg: %+v, %v", m, err)
	}
}
