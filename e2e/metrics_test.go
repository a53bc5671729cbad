package e2e

import (
	"bytes"
	"testing"

	"github.com/creditd/creditd/internal/promtext"
)

// TestMetrics: /metrics (no key) exposes the engine's and the SQLite
// journal's metrics, and the materializer's count moves once a range read
// has made it write the journal into the tables. The server runs three
// committers (--committers), and an account's charge goes through one.
func TestMetrics(t *testing.T) {
	s := startServer(t, "--committers", "3")
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		s.admin(201, "PUT", "/v1/accounts/"+id, map[string]any{})
		h := s.admin(201, "POST", "/v1/holds", map[string]any{"account_id": id, "action": "generate", "quantity": 2})
		s.admin(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
		s.wantBalance(id, 40, 0)
	}
	if types := s.entryTypes("m1"); len(types) == 0 {
		t.Fatal("no entries for a new account")
	}
	r := s.req("", "GET", "/metrics", nil, "")
	if r.status != 200 {
		t.Fatalf("GET /metrics: %d %s", r.status, r.raw)
	}
	mfs, err := promtext.Parse(bytes.NewReader(r.raw))
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string) float64 {
		v, ok := mfs.Value(name)
		if !ok {
			t.Fatalf("no %s in:\n%s", name, r.raw)
		}
		return v
	}
	if v := value("creditd_sqlite_materialize_transactions_total"); v < 1 {
		t.Errorf("materialize transactions %v after a range read, want ≥ 1", v)
	}
	if v := value("creditd_sqlite_materialize_rows_total"); v < 1 {
		t.Errorf("materialized rows %v, want ≥ 1", v)
	}
	if v := value("creditd_sqlite_journal_pending_rows_max"); v != 1<<18 {
		t.Errorf("pending rows max %v", v)
	}
	value("creditd_sqlite_journal_pending_rows")
	value("creditd_sqlite_journal_full_waits_total")
	value("creditd_sqlite_journal_superseded_rows_total")
	if v := value("creditd_sqlite_materialize_start_rows"); v <= 0 || v > 1<<18 {
		t.Errorf("creditd_sqlite_materialize_start_rows = %v, want in (0, 2^18]", v)
	}
	value("creditd_sqlite_materialize_failures_total")
	if v := value("creditd_ledger_entries_total"); v < 1 {
		t.Errorf("ledger entries %v, want ≥ 1", v)
	}
}
