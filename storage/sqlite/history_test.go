package sqlite_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestHistory(t *testing.T) {
	s := sqlite.OpenTest(t)
	storagetest.History(t, s.History(), func(t *testing.T, serverID string) []wire.Msg {
		t.Helper()
		rows, err := s.DB().Query(`SELECT send_id, receiver_id, local_id, server_id, send_time, msg_type,
			content_type, content, platform FROM messages WHERE server_id = ?`, serverID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []wire.Msg
		for rows.Next() {
			var m wire.Msg
			if err := rows.Scan(&m.SendID, &m.ReceiverID, &m.LocalID, &m.ServerID, &m.SendTime, &m.MsgType,
				&m.ContentType, &m.Content, &m.Platform); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	})
}
