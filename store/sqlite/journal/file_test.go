package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func recData(seq int64, gen int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("record %d gen %d;", seq, gen)), int(seq%7)+1)
}

func openJF(t *testing.T, dir string, applied, segBytes int64) (*file, []record, int64) {
	t.Helper()
	jf, recs, err := openFile(nil, dir, applied, noCut, segBytes)
	next := applied + 1
	if len(recs) > 0 {
		next = recs[len(recs)-1].seq + 1
	}
	if err != nil {
		t.Fatalf("open journal (applied %d): %v", applied, err)
	}
	t.Cleanup(func() { jf.close() })
	return jf, recs, next
}

func appendAll(t *testing.T, jf *file, from, to int64, gen int) {
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
	if len(jf.spares) > sparesMax || jf.reused < 10 {
		t.Errorf("%d spares (at most %d), %d segments started from a spare (want many)", len(jf.spares), sparesMax, jf.reused)
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
			path := jf.path(jf.cur.First)
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
	os.Remove(filepath.Join(dir, segmentName(segs[1].First)))
	if _, _, err := openFile(nil, dir, 0, noCut, 256); err == nil || !strings.Contains(err.Error(), "follows") {
		t.Fatalf("open with a segment missing: %v, want an error", err)
	}
	// Even when the tables hold the missing records: a hole means files
	// went missing, never something creditd does.
	if _, _, err := openFile(nil, dir, segs[1].Last, noCut, 256); err == nil {
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
	jf.f, _ = osFS{}.OpenFile(jf.path(jf.cur.First), os.O_RDWR, 0)
	if err := jf.append(3, recData(3, 0)); err == nil || !strings.Contains(err.Error(), "failed earlier") {
		t.Fatalf("append after a failure: %v, want a refusal", err)
	}
}

// BenchmarkJournalAppend measures one journal record write with its fsync.
func BenchmarkJournalAppend(b *testing.B) {
	for _, size := range []int{4 << 10, 32 << 10} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			jf, _, err := openFile(nil, b.TempDir(), 0, noCut, segmentBytes)
			if err != nil {
				b.Fatal(err)
			}
			defer jf.close()
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := jf.release(int64(i - 100)); err != nil {
					b.Fatal(err)
				}
				if err := jf.append(int64(i+1), data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A cut (healing after a failed append) drops every record past it for
// good, also whole segments, and the journal continues at the cut with new
// records that a later Open reads instead of the dropped ones.
func TestJournalFileCut(t *testing.T) {
	dir := t.TempDir()
	jf, _, _ := openJF(t, dir, 0, 256)
	appendAll(t, jf, 1, 30, 0)
	if n := len(jf.segments()); n < 3 {
		t.Fatalf("want at least 3 segments, got %d", n)
	}
	jf.close()
	cut := int64(12)
	jf2, recs, err := openFile(nil, dir, 0, cut, 256)
	if err != nil {
		t.Fatal(err)
	}
	wantRecords(t, recs, 1, cut, gen0)
	appendAll(t, jf2, cut+1, cut+2, 1)
	jf2.close()
	_, recs, _ = openJF(t, dir, 0, 256)
	wantRecords(t, recs, 1, cut+2, func(seq int64) int {
		if seq > cut {
			return 1
		}
		return 0
	})
	// A cut at the end of the last segment keeps everything.
	jf3, recs, err := openFile(nil, dir, 0, cut+2, 256)
	if err != nil {
		t.Fatal(err)
	}
	jf3.close()
	if len(recs) != int(cut+2) {
		t.Fatalf("cut at the last record read %d records, want %d", len(recs), cut+2)
	}
}
