package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/creditd/creditd/ledger"
)

func recData(seq int64, gen int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("record %d gen %d;", seq, gen)), int(seq%7)+1)
}

func openJF(t *testing.T, dir string, applied, segBytes int64) (*journalFile, []record, int64) {
	t.Helper()
	jf, recs, next, err := openJournalFileSized(dir, applied, segBytes)
	if err != nil {
		t.Fatalf("open journal (applied %d): %v", applied, err)
	}
	t.Cleanup(func() { jf.close() })
	return jf, recs, next
}

func appendAll(t *testing.T, jf *journalFile, from, to int64, gen int) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := jf.append(seq, recData(seq, gen)); err != nil {
			t.Fatalf("append %d: %v", seq, err)
		}
	}
}

func wantRecords(t *testing.T, recs []record, from, to int64, gen func(int64) int) {
	t.Helper()
	if int64(len(recs)) != to-from+1 {
		t.Fatalf("read %d records, want %d..%d", len(recs), from, to)
	}
	for i, r := range recs {
		seq := from + int64(i)
		if r.seq != seq || !bytes.Equal(r.data, recData(seq, gen(seq))) {
			t.Fatalf("record %d: seq %d, data %.40q; want seq %d, data %.40q", i, r.seq, r.data, seq, recData(seq, gen(seq)))
		}
	}
}

func gen0(int64) int { return 0 }

func TestJournalFileReopenReturnsUnappliedRecords(t *testing.T) {
	dir := t.TempDir()
	jf, recs, next := openJF(t, dir, 0, 1<<20)
	if len(recs) != 0 || next != 1 {
		t.Fatalf("new journal: %d records, next %d", len(recs), next)
	}
	appendAll(t, jf, 1, 20, 0)
	jf.close()
	_, recs, next = openJF(t, dir, 12, 1<<20)
	wantRecords(t, recs, 13, 20, gen0)
	if next != 21 {
		t.Errorf("next = %d, want 21", next)
	}
}

// Segments rotate at the size limit, fully applied ones become spares and
// are overwritten, and their stale records never read as live ones.
func TestJournalFileRotatesAndReusesSegments(t *testing.T) {
	dir := t.TempDir()
	const segBytes = 2048
	jf, _, _ := openJF(t, dir, 0, segBytes)
	applied := int64(0)
	for seq := int64(1); seq <= 400; seq++ {
		if seq%25 == 0 {
			applied = seq - 10
			if err := jf.release(applied); err != nil {
				t.Fatal(err)
			}
		}
		appendAll(t, jf, seq, seq, 1)
	}
	segs := jf.segments()
	if len(segs) < 2 || len(segs) > 6 {
		t.Errorf("%d live segments, want a few: %+v", len(segs), segs)
	}
	if len(jf.spares) > journalSparesMax || jf.reused < 10 {
		t.Errorf("%d spares (at most %d), %d segments started from a spare (want many)", len(jf.spares), journalSparesMax, jf.reused)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != len(segs)+len(jf.spares) {
		t.Errorf("%d files in the journal, want %d segments + %d spares", len(files), len(segs), len(jf.spares))
	}
	jf.close()
	jf, recs, next := openJF(t, dir, applied, segBytes)
	wantRecords(t, recs, applied+1, 400, func(int64) int { return 1 })
	if next != 401 {
		t.Errorf("next = %d, want 401", next)
	}
	appendAll(t, jf, 401, 420, 1)
	jf.close()
	_, recs, _ = openJF(t, dir, 400, segBytes)
	wantRecords(t, recs, 401, 420, func(int64) int { return 1 })
}

// A record cut short or corrupted by a crash ends the journal; the next
// append writes over it.
func TestJournalFileTornTail(t *testing.T) {
	for _, damage := range []string{"truncate", "flip"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			jf, _, _ := openJF(t, dir, 0, 1<<20)
			appendAll(t, jf, 1, 5, 0)
			off := jf.off
			path := jf.path(jf.cur.first)
			jf.close()
			last := recordHeaderBytes + int64(len(recData(5, 0)))
			switch damage {
			case "truncate":
				if err := os.Truncate(path, off-3); err != nil {
					t.Fatal(err)
				}
			case "flip":
				b, _ := os.ReadFile(path)
				b[off-last+recordHeaderBytes+2] ^= 0x40
				os.WriteFile(path, b, 0o600)
			}
			jf, recs, next := openJF(t, dir, 0, 1<<20)
			wantRecords(t, recs, 1, 4, gen0)
			if next != 5 {
				t.Fatalf("next = %d, want 5", next)
			}
			if err := jf.append(5, recData(5, 2)); err != nil {
				t.Fatal(err)
			}
			appendAll(t, jf, 6, 7, 2)
			jf.close()
			_, recs, _ = openJF(t, dir, 0, 1<<20)
			wantRecords(t, recs, 1, 7, func(seq int64) int {
				if seq >= 5 {
					return 2
				}
				return 0
			})
		})
	}
}

// A crash between starting a segment (from a spare) and writing its first
// record leaves a segment whose records are all stale: it is empty.
func TestJournalFileEmptyLastSegment(t *testing.T) {
	dir := t.TempDir()
	jf, _, _ := openJF(t, dir, 0, 1<<20)
	appendAll(t, jf, 1, 5, 0)
	jf.close()
	// Segment 6, a copy of segment 1: records 1..5, stale for it.
	b, _ := os.ReadFile(filepath.Join(dir, segmentName(1)))
	os.WriteFile(filepath.Join(dir, segmentName(6)), b, 0o600)
	jf, recs, next := openJF(t, dir, 3, 1<<20)
	wantRecords(t, recs, 4, 5, gen0)
	if next != 6 {
		t.Fatalf("next = %d, want 6", next)
	}
	appendAll(t, jf, 6, 8, 0)
	jf.close()
	_, recs, _ = openJF(t, dir, 3, 1<<20)
	wantRecords(t, recs, 4, 8, gen0)
}

func TestJournalFileMissingSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	jf, _, _ := openJF(t, dir, 0, 256)
	appendAll(t, jf, 1, 30, 0)
	segs := jf.segments()
	jf.close()
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %+v", segs)
	}
	os.Remove(filepath.Join(dir, segmentName(segs[1].first)))
	if _, _, _, err := openJournalFileSized(dir, 0, 256); err == nil || !strings.Contains(err.Error(), "follows") {
		t.Fatalf("open with a segment missing: %v, want an error", err)
	}
	// Even when the tables hold the missing records: a hole means files
	// went missing, never something creditd does.
	if _, _, _, err := openJournalFileSized(dir, segs[1].last, 256); err == nil {
		t.Fatalf("open with a segment missing before applied: want an error about the gap")
	}
}

func TestJournalFileRefusesAppendsAfterAFailure(t *testing.T) {
	dir := t.TempDir()
	jf, _, _ := openJF(t, dir, 0, 1<<20)
	appendAll(t, jf, 1, 2, 0)
	jf.f.Close() // the next write fails
	if err := jf.append(3, recData(3, 0)); err == nil {
		t.Fatal("append to a closed file succeeded")
	}
	jf.f, _ = os.OpenFile(jf.path(jf.cur.first), os.O_RDWR, 0)
	if err := jf.append(3, recData(3, 0)); err == nil || !strings.Contains(err.Error(), "failed earlier") {
		t.Fatalf("append after a failure: %v, want a refusal", err)
	}
}

// A data directory from a version with the SQLite journal file: its
// unapplied batches reach the tables at Open, and the file goes away.
func TestOpenReplaysLegacyJournal(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
	if err := s.Close(); err != nil {
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
	data, err := encodeChangeSet(&changeSet{Seq: applied + 1, Accounts: []ledger.Account{*account("B", 7)}})
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
	segs := s2.j.f.segments()
	if segs[len(segs)-1].last != applied+2 {
		t.Errorf("journal segments after the old journal: %+v, want the last record %d", segs, applied+2)
	}
	if slices.ContainsFunc(segs, func(sg segment) bool { return sg.first <= applied }) {
		t.Errorf("a live segment reuses seqs the old journal had: %+v", segs)
	}
}

// After a failed journal write the store refuses batches as unavailable.
func TestBeginBatchAfterJournalFailure(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
	s.j.batchMu.Lock()
	s.j.f.f.Close() // the next write fails
	s.j.batchMu.Unlock()
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err == nil {
		t.Fatal("commit to a closed journal file succeeded")
	}
	_, err = s.BeginBatch(ctx)
	if ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Fatalf("BeginBatch after a journal failure: %v, want unavailable", err)
	}
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("account after the failed commit: %+v, %v; want version 1", a, err)
	}
}
