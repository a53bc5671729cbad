package sqlite

import (
	"context"
	"errors"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// TestWrapBadData: SQLite's errors caused by the data written (constraint
// violations, a type mismatch) carry ledger.ErrBadData, as PostgreSQL's
// SQLSTATE classes 22 and 23 do: unique violations with the code conflict,
// the others invalid_request. Other errors carry no mark.
func TestWrapBadData(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, err := s.w.ExecContext(ctx, `CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, x INTEGER NOT NULL CHECK (x > 0))`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO t VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sql, code string
		marked          bool
	}{
		{"Unique", `INSERT INTO t VALUES (1, 2)`, ledger.EConflict, true},
		{"NotNull", `INSERT INTO t VALUES (2, NULL)`, ledger.EInvalid, true},
		{"Check", `INSERT INTO t VALUES (3, -1)`, ledger.EInvalid, true},
		{"Mismatch", `INSERT INTO t VALUES ('not a rowid', 1)`, ledger.EInvalid, true},
		{"NoSuchTable", `INSERT INTO nope VALUES (1)`, ledger.EInternal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.w.ExecContext(ctx, tc.sql)
			if err == nil {
				t.Fatal("the statement succeeded")
			}
			err = wrap("test", err, "")
			if errors.Is(err, ledger.ErrBadData) != tc.marked || ledger.ErrorCode(err) != tc.code {
				t.Errorf("%v: code %s, ErrBadData %v; want %s, %v", err, ledger.ErrorCode(err), errors.Is(err, ledger.ErrBadData), tc.code, tc.marked)
			}
		})
	}
}
