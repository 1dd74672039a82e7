package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzDecodeMsg(f *testing.F) {
	big := fullMsg()
	big.Content = bytes.Repeat([]byte("ab"), 300)
	seeds := []Msg{
		{},
		fullMsg(),
		big,
		{SendID: "a", ReceiverID: "b", MsgType: MsgTypeHangup, Content: EncodeHangup(5000), RelatedMsgID: ptr("")},
		{MsgType: MsgTypeRead, Content: MsgRead{MsgSeq: []int64{1, 2}, UserID: "u"}.MarshalBincode()},
	}
	for _, m := range seeds {
		f.Add(m.MarshalBincode())
	}
	f.Add([]byte{})
	f.Add(append(le64(1<<62), 'x'))
	f.Fuzz(func(t *testing.T, b []byte) {
		m1, err := DecodeMsg(b)
		if err != nil {
			return
		}
		// Decoding is strict (bool and option tags are 0/1, lengths exact), so
		// the encoding is canonical: re-encoding yields the consumed prefix.
		enc := m1.MarshalBincode()
		if !bytes.HasPrefix(b, enc) {
			t.Fatalf("re-encoding is not a prefix of the input:\n in  %x\n out %x", b, enc)
		}
		if len(enc) != m1.BincodeSize() {
			t.Fatalf("BincodeSize %d != len %d", m1.BincodeSize(), len(enc))
		}
		m2, err := DecodeMsg(enc)
		if err != nil {
			t.Fatalf("re-decode failed: %v", err)
		}
		if !msgEqual(m1, m2) {
			t.Fatalf("decode→encode→decode unstable:\n %+v\n %+v", m1, m2)
		}
		// The JSON form round-trips too (strings are valid UTF-8 after a
		// successful bincode decode).
		m3, err := DecodeJSONMsg(m1.AppendJSON(nil))
		if err != nil {
			t.Fatalf("JSON re-decode failed: %v", err)
		}
		if !msgEqual(m1, m3) {
			t.Fatalf("JSON round trip unstable:\n %+v\n %+v", m1, m3)
		}
	})
}

// FuzzDecodePayloads decodes the input as every content type and checks
// the same stability property.
func FuzzDecodePayloads(f *testing.F) {
	gi := sampleGroupInfo()
	for _, p := range []payload{
		gi, sampleMember("u"), GroupInvitation{Info: &gi, Members: []GroupMember{sampleMember("a"), sampleMember("b")}},
		Friend{Region: ptr("r"), Email: ptr("e")}, FriendshipWithUser{ApplyMsg: ptr("hi")},
		MsgRead{MsgSeq: []int64{1, 2, 3}, UserID: "u"}, CandidateData{Candidate: "c", SdpMid: ptr("0"), SdpMIndex: ptr(uint16(1))},
	} {
		f.Add(p.MarshalBincode())
	}
	f.Add(EncodeStrings([]string{"a", "bc"}))
	kinds := []payload{GroupInfo{}, GroupMember{}, GroupInvitation{}, Friend{}, FriendshipWithUser{}, MsgRead{}, CandidateData{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range kinds {
			v, err := decodeInto(k, b)
			if err != nil {
				continue
			}
			enc := v.MarshalBincode()
			if !bytes.HasPrefix(b, enc) {
				t.Fatalf("%T: re-encoding is not a prefix of the input", k)
			}
			v2, err := decodeInto(k, enc)
			if err != nil || !reflect.DeepEqual(v, v2) {
				t.Fatalf("%T: unstable: %+v vs %+v (%v)", k, v, v2, err)
			}
		}
		if ss, err := DecodeStrings(b); err == nil {
			if enc := EncodeStrings(ss); !bytes.HasPrefix(b, enc) {
				t.Fatal("strings: re-encoding is not a prefix of the input")
			}
		}
	})
}
