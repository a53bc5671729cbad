package sqlite

// The journal's files: records appended to segment files, one write and one
// fdatasync per record.
//
// <name>.journal/ holds segments named by the seq of their first record
// (%020d.seg). A record is
//
//	magic  uint32  recordMagic
//	length uint32  len(data)
//	seq    uint64
//	crc    uint32  CRC-32C of length, seq and data
//	data   [length]byte  (an encoded changeSet)
//
// little-endian, written with one pwrite and made durable with fdatasync
// before Commit returns. Records in a segment have consecutive seqs,
// starting at the segment's name; a segment ends at its first record that
// is short, fails its CRC, or has another seq. The next record of a
// journal whose segment has reached journalSegmentBytes starts a new
// segment.
//
// Segments whose records are all in the tables are renamed to spare-N.seg
// and reused for new segments: overwriting blocks a file already has makes
// fdatasync write only data, not the file's size and extents (on this
// machine's ext4, half the time and CPU of an appending fdatasync). A spare
// still holds its old records, but their seqs are lower than any the
// segment can expect, so they read as its end.
//
// A failed write or fdatasync leaves the record's fate unknown (the kernel
// may have dropped the dirty pages), so the journal refuses every later
// append; the next Open decides from what is on disk.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

const (
	// journalSegmentBytes is the size at which a segment is closed and the
	// next record starts a new one.
	journalSegmentBytes = 16 << 20
	// journalSparesMax is how many fully materialized segments are kept
	// for reuse; the rest are deleted.
	journalSparesMax = 2

	recordMagic       = 0x314a5243 // "CRJ1"
	recordHeaderBytes = 20
	// journalRecordBytesMax bounds one record's data (a batch is far
	// smaller: BatchOpsMax operations).
	journalRecordBytesMax = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalDir is the journal directory of the database at path.
func journalDir(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".journal"
}

// legacyJournalPath is where versions before the file journal kept it: a
// SQLite database, table batches(seq, data).
func legacyJournalPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".journal.db"
}

// segment is one journal file.
type segment struct {
	first int64 // seq of its first record: its name
	last  int64 // seq of its last record; first-1 when it has none
}

func segmentName(first int64) string { return fmt.Sprintf("%020d.seg", first) }

// record is one journal record read back.
type record struct {
	seq  int64
	data []byte
}

// journalFile is the open journal: the segment being written and the older
// ones still needed.
type journalFile struct {
	dir    string
	f      *os.File // the segment being written
	cur    segment
	off    int64     // where the next record goes in f
	old    []segment // earlier segments, ascending
	spares []string  // paths of segments kept for reuse
	err    error     // a failed append: every later one fails too
	buf    []byte
	// segmentBytes is journalSegmentBytes; tests lower it.
	segmentBytes int64
	reused       int // segments started from a spare
}

// openJournalFile opens (creating if need be) the journal in dir and
// returns, in order, the records with seq > applied. next is the seq the
// next record will have.
func openJournalFile(dir string, applied int64) (jf *journalFile, recs []record, next int64, err error) {
	return openJournalFileSized(dir, applied, journalSegmentBytes)
}

func openJournalFileSized(dir string, applied, segmentBytes int64) (jf *journalFile, recs []record, next int64, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, 0, fmt.Errorf("sqlite: journal: %w", err)
	}
	jf = &journalFile{dir: dir, segmentBytes: segmentBytes}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("sqlite: journal: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "spare-") && strings.HasSuffix(name, ".seg"):
			jf.spares = append(jf.spares, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".seg"):
			first, err := strconv.ParseInt(strings.TrimSuffix(name, ".seg"), 10, 64)
			if err != nil || first < 1 || name != segmentName(first) {
				return nil, nil, 0, fmt.Errorf("sqlite: journal: unexpected file %s", filepath.Join(dir, name))
			}
			segs = append(segs, segment{first: first})
		}
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.first, b.first) })
	var ends []int64 // where each segment's records end
	for i := range segs {
		sg := &segs[i]
		data, err := os.ReadFile(jf.path(sg.first))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("sqlite: journal: %w", err)
		}
		off, seq := 0, sg.first
		for {
			d, n, ok := parseRecord(data[off:], seq)
			if !ok {
				break
			}
			if seq > applied {
				recs = append(recs, record{seq: seq, data: d})
			}
			off += n
			seq++
		}
		sg.last = seq - 1
		ends = append(ends, int64(off))
		if i > 0 && segs[i-1].last+1 != sg.first {
			return nil, nil, 0, fmt.Errorf("sqlite: journal: %s ends at record %d but %s follows",
				segmentName(segs[i-1].first), segs[i-1].last, segmentName(sg.first))
		}
	}
	if len(recs) > 0 && recs[0].seq != applied+1 {
		return nil, nil, 0, fmt.Errorf("sqlite: journal: the tables hold batches up to %d but the journal resumes at %d",
			applied, recs[0].seq)
	}
	next = applied + 1
	if len(recs) > 0 {
		next = recs[len(recs)-1].seq + 1
	}
	// An empty last segment (a crash between starting it and writing its
	// first record) becomes a spare.
	if n := len(segs); n > 0 && segs[n-1].last < segs[n-1].first {
		if err := jf.retire(segs[n-1].first); err != nil {
			return nil, nil, 0, err
		}
		segs, ends = segs[:n-1], ends[:n-1]
	}
	// Continue the last segment if the next record belongs there.
	if n := len(segs); n > 0 && segs[n-1].last+1 == next && ends[n-1] < jf.segmentBytes {
		f, err := os.OpenFile(jf.path(segs[n-1].first), os.O_RDWR, 0)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("sqlite: journal: %w", err)
		}
		jf.f, jf.cur, jf.off, jf.old = f, segs[n-1], ends[n-1], segs[:n-1]
	} else {
		jf.old = segs
		if err := jf.start(next); err != nil {
			return nil, nil, 0, err
		}
	}
	return jf, recs, next, nil
}

// parseRecord reads the record at the start of b if it is whole, intact
// and has seq; n is its length with the header.
func parseRecord(b []byte, seq int64) (data []byte, n int, ok bool) {
	if len(b) < recordHeaderBytes || binary.LittleEndian.Uint32(b) != recordMagic {
		return nil, 0, false
	}
	length := int(binary.LittleEndian.Uint32(b[4:]))
	if int64(binary.LittleEndian.Uint64(b[8:])) != seq || length > len(b)-recordHeaderBytes {
		return nil, 0, false
	}
	crc := crc32.Update(crc32.Checksum(b[4:16], castagnoli), castagnoli, b[recordHeaderBytes:recordHeaderBytes+length])
	if crc != binary.LittleEndian.Uint32(b[16:]) {
		return nil, 0, false
	}
	return b[recordHeaderBytes : recordHeaderBytes+length], recordHeaderBytes + length, true
}

func (jf *journalFile) path(first int64) string { return filepath.Join(jf.dir, segmentName(first)) }

// append writes the record seq (the one after the last) and syncs it.
func (jf *journalFile) append(seq int64, data []byte) error {
	if jf.err != nil {
		return fmt.Errorf("sqlite: the journal failed earlier and takes no more writes until the store is reopened: %w", jf.err)
	}
	if seq != jf.cur.last+1 {
		return fmt.Errorf("sqlite: journal: record %d appended after %d", seq, jf.cur.last)
	}
	if len(data) > journalRecordBytesMax {
		return fmt.Errorf("sqlite: journal: a record of %d bytes exceeds %d", len(data), journalRecordBytesMax)
	}
	if jf.off > 0 && jf.off+recordHeaderBytes+int64(len(data)) > jf.segmentBytes {
		if err := jf.rotate(seq); err != nil {
			jf.err = err
			return err
		}
	}
	b := slices.Grow(jf.buf[:0], recordHeaderBytes+len(data))[:recordHeaderBytes]
	binary.LittleEndian.PutUint32(b, recordMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
	binary.LittleEndian.PutUint64(b[8:], uint64(seq))
	binary.LittleEndian.PutUint32(b[16:], crc32.Update(crc32.Checksum(b[4:16], castagnoli), castagnoli, data))
	b = append(b, data...)
	jf.buf = b
	if _, err := jf.f.WriteAt(b, jf.off); err != nil {
		jf.err = err
		return fmt.Errorf("sqlite: journal: %w", err)
	}
	if err := fdatasync(jf.f); err != nil {
		jf.err = err
		return fmt.Errorf("sqlite: journal: %w", err)
	}
	jf.off += int64(len(b))
	jf.cur.last = seq
	return nil
}

// rotate closes the current segment and starts the next at seq.
func (jf *journalFile) rotate(seq int64) error {
	if err := jf.f.Close(); err != nil {
		return fmt.Errorf("sqlite: journal: %w", err)
	}
	jf.old = append(jf.old, jf.cur)
	jf.f = nil
	return jf.start(seq)
}

// start makes the segment whose first record is seq the current one, from
// a spare if there is one.
func (jf *journalFile) start(seq int64) error {
	path := jf.path(seq)
	if n := len(jf.spares); n > 0 {
		if err := os.Rename(jf.spares[n-1], path); err != nil {
			return fmt.Errorf("sqlite: journal: %w", err)
		}
		jf.spares = jf.spares[:n-1]
		jf.reused++
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: journal: %w", err)
	}
	if err := syncDir(jf.dir); err != nil {
		f.Close()
		return err
	}
	jf.f, jf.cur, jf.off = f, segment{first: seq, last: seq - 1}, 0
	return nil
}

// release retires the older segments whose records are all at or below
// applied.
func (jf *journalFile) release(applied int64) error {
	for len(jf.old) > 0 && jf.old[0].last <= applied {
		if err := jf.retire(jf.old[0].first); err != nil {
			return err
		}
		jf.old = jf.old[1:]
	}
	return nil
}

// retire turns the segment starting at first into a spare, or deletes it
// when there are enough.
func (jf *journalFile) retire(first int64) error {
	path := jf.path(first)
	if len(jf.spares) >= journalSparesMax {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: journal: %w", err)
		}
		return nil
	}
	spare := filepath.Join(jf.dir, fmt.Sprintf("spare-%d.seg", first))
	if err := os.Rename(path, spare); err != nil {
		return fmt.Errorf("sqlite: journal: %w", err)
	}
	jf.spares = append(jf.spares, spare)
	return nil
}

// segments returns the journal's live segments, oldest first (for tests).
func (jf *journalFile) segments() []segment { return append(slices.Clone(jf.old), jf.cur) }

func (jf *journalFile) close() error {
	if jf == nil || jf.f == nil {
		return nil
	}
	err := jf.f.Close()
	jf.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sqlite: journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sqlite: journal: sync %s: %w", dir, err)
	}
	return nil
}
