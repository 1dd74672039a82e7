package wire

import "unsafe"

// msgFixedSize is the encoded size of a Msg without its variable parts:
// 8 length prefixes (7 strings + content), 4 i64, 3 i32, is_read, option tag.
const msgFixedSize = 8*8 + 4*8 + 3*4 + 1 + 1

// BincodeSize returns the exact length of the bincode encoding of m.
func (m *Msg) BincodeSize() int {
	n := msgFixedSize + len(m.SendID) + len(m.ReceiverID) + len(m.LocalID) + len(m.ServerID) +
		len(m.Content) + len(m.GroupID) + len(m.Avatar) + len(m.Nickname)
	if m.RelatedMsgID != nil {
		n += 8 + len(*m.RelatedMsgID)
	}
	return n
}

// AppendMsg appends the bincode encoding of m to dst and returns the extended
// slice. It does not allocate when dst has m.BincodeSize() spare capacity.
func AppendMsg(dst []byte, m *Msg) []byte {
	b := dst
	b = appendString(b, m.SendID)
	b = appendString(b, m.ReceiverID)
	b = appendString(b, m.LocalID)
	b = appendString(b, m.ServerID)
	b = appendI64(b, m.CreateTime)
	b = appendI64(b, m.SendTime)
	b = appendI64(b, m.Seq)
	b = appendI32(b, int32(m.MsgType))
	b = appendI32(b, m.ContentType)
	b = appendBytes(b, m.Content)
	b = appendBool(b, m.IsRead)
	b = appendString(b, m.GroupID)
	b = appendI32(b, m.Platform)
	b = appendString(b, m.Avatar)
	b = appendString(b, m.Nickname)
	b = appendOptString(b, m.RelatedMsgID)
	b = appendI64(b, m.SendSeq)
	return b
}

// MarshalBincode returns the bincode encoding of m (one allocation).
func (m *Msg) MarshalBincode() []byte {
	return AppendMsg(make([]byte, 0, m.BincodeSize()), m)
}

// DecodeMsg decodes a bincode Msg. Trailing bytes after the Msg are ignored,
// as bincode does. Errors wrap ErrMalformed (as *DecodeError). Decoding never
// allocates more than len(b) bytes plus a fixed overhead: all strings and the
// content share one buffer sized from the already-validated lengths.
//
// The decoded Msg does not alias b.
func DecodeMsg(b []byte) (Msg, error) {
	var m Msg
	d := decoder{b: b, typ: "Msg"}
	sendID := d.rawString("send_id")
	receiverID := d.rawString("receiver_id")
	localID := d.rawString("local_id")
	serverID := d.rawString("server_id")
	m.CreateTime = d.i64("create_time")
	m.SendTime = d.i64("send_time")
	m.Seq = d.i64("seq")
	m.MsgType = MsgType(d.i32("msg_type"))
	m.ContentType = d.i32("content_type")
	content := d.rawBytes("content")
	m.IsRead = d.bool("is_read")
	groupID := d.rawString("group_id")
	m.Platform = d.i32("platform")
	avatar := d.rawString("avatar")
	nickname := d.rawString("nickname")
	var related []byte
	hasRelated := d.some("related_msg_id")
	if hasRelated {
		related = d.rawString("related_msg_id")
	}
	m.SendSeq = d.i64("send_seq")
	if d.err != nil {
		return Msg{}, d.err
	}

	// One allocation for every string and the content. The strings are views
	// of buf that is never written again after they are taken, which is the
	// same contract strings.Builder relies on.
	total := len(sendID) + len(receiverID) + len(localID) + len(serverID) + len(groupID) +
		len(avatar) + len(nickname) + len(related) + len(content)
	if total > 0 {
		buf := make([]byte, 0, total)
		m.SendID, buf = internString(buf, sendID)
		m.ReceiverID, buf = internString(buf, receiverID)
		m.LocalID, buf = internString(buf, localID)
		m.ServerID, buf = internString(buf, serverID)
		m.GroupID, buf = internString(buf, groupID)
		m.Avatar, buf = internString(buf, avatar)
		m.Nickname, buf = internString(buf, nickname)
		var rel string
		rel, buf = internString(buf, related)
		if hasRelated {
			m.RelatedMsgID = &rel
		}
		if len(content) > 0 {
			start := len(buf)
			buf = append(buf, content...)
			// Full slice expression: appending to Content must not overwrite
			// anything (it is last anyway, and cap == len).
			m.Content = buf[start:len(buf):len(buf)]
		}
	} else if hasRelated {
		m.RelatedMsgID = new(string)
	}
	return m, nil
}

// internString copies p to the end of buf (which has enough capacity, so it
// never moves) and returns a string viewing the copy.
func internString(buf, p []byte) (string, []byte) {
	if len(p) == 0 {
		return "", buf
	}
	start := len(buf)
	buf = append(buf, p...)
	return unsafe.String(&buf[start], len(p)), buf
}

// UnmarshalBincode decodes b into m. On error m is left unchanged.
func (m *Msg) UnmarshalBincode(b []byte) error {
	v, err := DecodeMsg(b)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Clone returns a deep copy of m: Content and RelatedMsgID do not share
// memory with m (strings are immutable and are shared).
func (m *Msg) Clone() Msg {
	c := *m
	if m.Content != nil {
		c.Content = append([]byte(nil), m.Content...)
		if c.Content == nil { // m.Content was empty but non-nil
			c.Content = []byte{}
		}
	}
	if m.RelatedMsgID != nil {
		r := *m.RelatedMsgID
		c.RelatedMsgID = &r
	}
	return c
}
