package wire

import (
	"encoding/json"
	"testing"
)

func benchMsg() Msg {
	m := fullMsg()
	m.Content = []byte("a typical chat message of moderate length, say about a hundred bytes or so......")
	return m
}

func BenchmarkAppendMsg(b *testing.B) {
	m := benchMsg()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMsg(buf[:0], &m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkMarshalBincode(b *testing.B) {
	m := benchMsg()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.MarshalBincode()
	}
}

func BenchmarkDecodeMsg(b *testing.B) {
	m := benchMsg()
	enc := m.MarshalBincode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMsg(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	m := benchMsg()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	m := benchMsg()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendJSON(buf[:0])
	}
}

func BenchmarkDecodeJSONMsg(b *testing.B) {
	m := benchMsg()
	enc := m.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSONMsg(enc); err != nil {
			b.Fatal(err)
		}
	}
}
