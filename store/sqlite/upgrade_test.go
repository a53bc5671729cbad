package sqlite

import (
	"context"
	"database/sql"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite/journal"
)

// A data directory from a version with the SQLite journal file: its
// unapplied batches reach the tables at Open, and the file goes away.
func TestOpenReplaysLegacyJournal(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Versions with the SQLite journal had no segment journal.
	if err := os.RemoveAll(journalDir(path)); err != nil {
		t.Fatal(err)
	}
	var applied int64
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT applied_seq FROM journal_state`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	db.Close()
	legacy := legacyJournalPath(path)
	db, err = sql.Open("sqlite", legacy)
	if err != nil {
		t.Fatal(err)
	}
	data, err := journal.EncodeChangeSet(&journal.ChangeSet{Seq: applied + 1, Accounts: []ledger.Account{*account("B", 7)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`CREATE TABLE batches (seq INTEGER NOT NULL PRIMARY KEY, data BLOB NOT NULL) STRICT`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO batches (seq, data) VALUES (?, ?), (?, ?)`, applied, []byte("old"), applied+1, data); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// An upgrade cut short after the import, before the old file went:
	// the next one skips what the segment journal has.
	if err := journal.Import(journalDir(path), applied, []journal.Record{{Seq: applied + 1, Data: data}}); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open with an old journal: %v", err)
	}
	defer s2.Close()
	b, err := s2.GetAccount(ctx, "B")
	if err != nil || b.Version != 7 {
		t.Fatalf("account B from the old journal: %+v, %v", b, err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("old journal still there: %v", err)
	}
	commit(t, s2, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("C", 1)}) })
	segs := s2.j.Segments()
	if segs[len(segs)-1].Last != applied+2 {
		t.Errorf("journal segments after the old journal: %+v, want the last record %d", segs, applied+2)
	}
	if slices.ContainsFunc(segs, func(sg journal.Segment) bool { return sg.First <= applied }) {
		t.Errorf("a live segment reuses seqs the old journal had: %+v", segs)
	}
}

// Hold blocks as written before migration 6 (one millisecond of one
// account each, q and tag NULL) are repacked by the upgrade step: every
// hold is found by id afterwards, by read-write and read-only stores, and
// no such block is left. A read-only store refuses the data before.
func TestUpgradeRepacksLegacyHoldBlocks(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("B", 1)}) })
	var olds []*ledger.Hold
	for k := range 3 { // two holds in one legacy block, one in another
		at := t0.Add(time.Duration(k/2) * time.Millisecond)
		olds = append(olds, settle(newHoldID(ledger.NewID("hold"), "B", at), ledger.HoldReleased, t0.Add(time.Second)))
	}
	slices.SortFunc(olds[:2], func(a, b *ledger.Hold) int { return strings.Compare(a.ID, b.ID) })
	for _, blk := range [][]*ledger.Hold{olds[:2], olds[2:]} {
		ms, _ := ledger.IDMillis(blk[0].ID)
		if _, err := s.w.Exec(`INSERT INTO hold_blocks (account_id, ms, seq, last_id, data) VALUES ('B', ?, 1, ?, ?)`,
			ms, blk[len(blk)-1].ID, journal.EncodeHolds(blk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ro, err := OpenReadOnly(ctx, path); err == nil {
		ro.Close()
		t.Fatal("OpenReadOnly of data with legacy hold blocks succeeded")
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open with legacy hold blocks: %v", err)
	}
	defer s.Close()
	var left int
	if err := s.r.QueryRow(`SELECT count(*) FROM hold_blocks WHERE q IS NULL`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("legacy blocks after the upgrade: %d, %v", left, err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for name, st := range map[string]*Store{"read-write": s, "read-only": ro} {
		for _, want := range olds {
			h, err := st.GetHold(ctx, want.ID)
			if err != nil || h.Status != want.Status || h.AccountID != "B" {
				t.Fatalf("%s GetHold(%s) after the upgrade: %+v, %v", name, want.ID, h, err)
			}
		}
		hist, err := st.LoadHistory(ctx, "B")
		if err != nil || len(hist.Holds) != 3 {
			t.Fatalf("%s LoadHistory(B) after the upgrade: %d holds, %v", name, len(hist.Holds), err)
		}
	}
}
