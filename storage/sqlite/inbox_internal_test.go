package sqlite

import (
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/storage"
)

// Both ranges of a pull must be served by their index (no scan of the table).
func TestInboxPullUsesIndexes(t *testing.T) {
	s := OpenTest(t)
	rows, err := s.DB().Query(`EXPLAIN QUERY PLAN `+inboxPullQuery, "u", 0, 10, 0, 10, storage.InboxPullLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	t.Logf("plan:\n%s", text)
	for _, want := range []string{"idx_inbox_receiver_seq (receiver_id=? AND seq>? AND seq<?)",
		"idx_inbox_send_seq (send_id=? AND send_seq>? AND send_seq<?)"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan does not use %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "SCAN inbox\n") || strings.HasSuffix(text, "SCAN inbox") {
		t.Errorf("plan scans the table:\n%s", text)
	}
}
