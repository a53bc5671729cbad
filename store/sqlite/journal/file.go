package journal

// The journal's files: records appended to segment files, one write and one
// fdatasync per record.
//
// The journal's directory (<name>.journal/ beside the database) holds segments named by the seq of their first record
// (%020d.seg). A record is
//
//	magic  uint32  recordMagic
//	length uint32  len(data)
//	seq    uint64
//	crc    uint32  CRC-32C of length, seq and data
//	data   [length]byte  (an encoded ChangeSet)
//
// little-endian, written with one pwrite and made durable with fdatasync
// before Commit returns. Records in a segment have consecutive seqs,
// starting at the segment's name; a segment ends at its first record that
// is short, fails its CRC, or has another seq. The next record of a
// journal whose segment has reached segmentBytes starts a new
// segment.
//
// Segments whose records are all in the tables are renamed to spare-N.seg
// and reused for new segments: overwriting blocks a file already has makes
// fdatasync write only data, not the file's size and extents, which costs
// less than an appending fdatasync (docs/sqlite-journal.md). A spare
// still holds its old records, but their seqs are lower than any the
// segment can expect, so they read as its end.
//
// A failed write or fdatasync leaves the record's fate unknown (the kernel
// may have dropped the dirty pages, or written them), so the file refuses
// every later append until it is reopened with a cut (openFile): records
// past the last acknowledged one are cut off before anything else is read
// or written.

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
	// segmentBytes is the size at which a segment is closed and the
	// next record starts a new one.
	segmentBytes = 16 << 20
	// sparesMax is how many fully materialized segments are kept for
	// reuse; the rest are deleted.
	sparesMax = 2

	recordMagic       = 0x314a5243 // "CRJ1"
	recordHeaderBytes = 20
	// recordBytesMax bounds one record's data (a batch is far
	// smaller: BatchOpsMax operations).
	recordBytesMax = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Segment is one journal file.
type Segment struct {
	First int64 // seq of its first record: its name
	Last  int64 // seq of its last record; First-1 when it has none
}

func segmentName(first int64) string { return fmt.Sprintf("%020d.seg", first) }

// record is one journal record read back.
type record struct {
	seq  int64
	data []byte
}

// file is the open journal: the segment being written and the older ones
// still needed.
type file struct {
	fs     FS
	dir    string
	f      File // the segment being written
	cur    Segment
	off    int64     // where the next record goes in f
	old    []Segment // earlier segments, ascending
	spares []string  // paths of segments kept for reuse
	err    error     // a failed append: every later one fails too
	buf    []byte
	// segBytes is segmentBytes; tests lower it.
	segBytes int64
	reused   int // segments started from a spare
}

// noCut is the cut of an Open: every intact record is kept.
const noCut = int64(1<<63 - 1)

// openFile opens (creating if need be) the journal in dir and returns, in
// order, the records with applied < seq <= cut. Records past cut (written,
// but never acknowledged) are cut off the files first.
func openFile(fsys FS, dir string, applied, cut, segBytes int64) (jf *file, recs []record, err error) {
	if fsys == nil {
		fsys = osFS{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	jf = &file{fs: fsys, dir: dir, segBytes: segBytes}
	segs, err := jf.list()
	if err != nil {
		return nil, nil, err
	}
	ends := make([]int64, len(segs)) // where each segment's records end
	for i := range segs {
		if segs[i].First > cut {
			// Past the cut: cutAt removes it, unread.
			segs[i].Last = segs[i].First - 1
			continue
		}
		var rs []record
		if rs, ends[i], err = jf.read(&segs[i], applied, cut); err != nil {
			return nil, nil, err
		}
		recs = append(recs, rs...)
		if i > 0 && segs[i-1].Last+1 != segs[i].First {
			return nil, nil, fmt.Errorf("journal: %s ends at record %d but %s follows",
				segmentName(segs[i-1].First), segs[i-1].Last, segmentName(segs[i].First))
		}
	}
	if len(recs) > 0 && recs[0].seq != applied+1 {
		return nil, nil, fmt.Errorf("journal: the tables hold batches up to %d but the journal resumes at %d",
			applied, recs[0].seq)
	}
	next := applied + 1
	if len(recs) > 0 {
		next = recs[len(recs)-1].seq + 1
	}
	if segs, ends, err = jf.cutAt(segs, ends, next, cut); err != nil {
		return nil, nil, err
	}
	if err := jf.resume(segs, ends, next); err != nil {
		return nil, nil, err
	}
	return jf, recs, nil
}

// list returns the journal's segments, ascending, and notes its spares.
func (jf *file) list() ([]Segment, error) {
	ents, err := os.ReadDir(jf.dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var segs []Segment
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "spare-") && strings.HasSuffix(name, ".seg"):
			jf.spares = append(jf.spares, filepath.Join(jf.dir, name))
		case strings.HasSuffix(name, ".seg"):
			first, err := strconv.ParseInt(strings.TrimSuffix(name, ".seg"), 10, 64)
			if err != nil || first < 1 || name != segmentName(first) {
				return nil, fmt.Errorf("journal: unexpected file %s", filepath.Join(jf.dir, name))
			}
			segs = append(segs, Segment{First: first})
		}
	}
	slices.SortFunc(segs, func(a, b Segment) int { return cmp.Compare(a.First, b.First) })
	return segs, nil
}

// read reads the segment sg's intact records up to cut, sets sg.Last, and
// returns those past applied and where the last one read ends.
func (jf *file) read(sg *Segment, applied, cut int64) (recs []record, end int64, err error) {
	data, err := os.ReadFile(jf.path(sg.First))
	if err != nil {
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	off, seq := 0, sg.First
	for seq <= cut {
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
	sg.Last = seq - 1
	return recs, int64(off), nil
}

// cutAt makes next the seq the files continue with. An empty last segment
// (a crash between starting it and writing its first record) becomes a
// spare. With a cut (cut < noCut), records from next on, written but never
// acknowledged, go for good: a segment that starts at or after next is
// removed (not kept as a spare: its records have the seqs the journal
// writes next) and the one holding next is truncated where next begins.
func (jf *file) cutAt(segs []Segment, ends []int64, next, cut int64) ([]Segment, []int64, error) {
	for n := len(segs); n > 0 && segs[n-1].First >= next; n = len(segs) {
		var err error
		if cut == noCut && segs[n-1].Last < segs[n-1].First {
			err = jf.retire(segs[n-1].First)
		} else if err = os.Remove(jf.path(segs[n-1].First)); err != nil {
			err = fmt.Errorf("journal: %w", err)
		}
		if err != nil {
			return nil, nil, err
		}
		segs, ends = segs[:n-1], ends[:n-1]
	}
	if n := len(segs); n > 0 && cut != noCut {
		if err := jf.truncate(segs[n-1].First, ends[n-1]); err != nil {
			return nil, nil, err
		}
	}
	return segs, ends, syncDir(jf.dir)
}

// truncate cuts the segment starting at first at off.
func (jf *file) truncate(first, off int64) error {
	path := jf.path(first)
	f, err := jf.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := errors.Join(f.Truncate(off), f.Datasync(), f.Close()); err != nil {
		return fmt.Errorf("journal: cut %s: %w", path, err)
	}
	return nil
}

// resume continues the last segment if the next record belongs there, or
// starts a new one.
func (jf *file) resume(segs []Segment, ends []int64, next int64) error {
	n := len(segs)
	if n > 0 && segs[n-1].Last+1 == next && ends[n-1] < jf.segBytes {
		f, err := jf.fs.OpenFile(jf.path(segs[n-1].First), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		jf.f, jf.cur, jf.off, jf.old = f, segs[n-1], ends[n-1], segs[:n-1]
		return nil
	}
	jf.old = segs
	return jf.start(next)
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

func (jf *file) path(first int64) string { return filepath.Join(jf.dir, segmentName(first)) }

// append writes the record seq (the one after the last) and syncs it.
func (jf *file) append(seq int64, data []byte) error {
	if jf.f == nil {
		return errors.New("journal: closed")
	}
	if jf.err != nil {
		return fmt.Errorf("journal: a write failed earlier; no more until the journal is healed: %w", jf.err)
	}
	if seq != jf.cur.Last+1 {
		return fmt.Errorf("journal: record %d appended after %d", seq, jf.cur.Last)
	}
	if len(data) > recordBytesMax {
		return fmt.Errorf("journal: a record of %d bytes exceeds %d", len(data), recordBytesMax)
	}
	if jf.off > 0 && jf.off+recordHeaderBytes+int64(len(data)) > jf.segBytes {
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
		return fmt.Errorf("journal: %w", err)
	}
	if err := jf.f.Datasync(); err != nil {
		jf.err = err
		return fmt.Errorf("journal: %w", err)
	}
	jf.off += int64(len(b))
	jf.cur.Last = seq
	return nil
}

// rotate closes the current segment and starts the next at seq.
func (jf *file) rotate(seq int64) error {
	if err := jf.f.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	jf.old = append(jf.old, jf.cur)
	jf.f = nil
	return jf.start(seq)
}

// start makes the segment whose first record is seq the current one, from
// a spare if there is one.
func (jf *file) start(seq int64) error {
	path := jf.path(seq)
	if n := len(jf.spares); n > 0 {
		if err := os.Rename(jf.spares[n-1], path); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		jf.spares = jf.spares[:n-1]
		jf.reused++
	}
	f, err := jf.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(jf.dir); err != nil {
		f.Close()
		return err
	}
	jf.f, jf.cur, jf.off = f, Segment{First: seq, Last: seq - 1}, 0
	return nil
}

// release retires the older segments whose records are all at or below
// applied.
func (jf *file) release(applied int64) error {
	for len(jf.old) > 0 && jf.old[0].Last <= applied {
		if err := jf.retire(jf.old[0].First); err != nil {
			return err
		}
		jf.old = jf.old[1:]
	}
	return nil
}

// retire turns the segment starting at first into a spare, or deletes it
// when there are enough.
func (jf *file) retire(first int64) error {
	path := jf.path(first)
	if len(jf.spares) >= sparesMax {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("journal: %w", err)
		}
		return nil
	}
	spare := filepath.Join(jf.dir, fmt.Sprintf("spare-%d.seg", first))
	if err := os.Rename(path, spare); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	jf.spares = append(jf.spares, spare)
	return nil
}

// segments returns the journal's live segments, oldest first.
func (jf *file) segments() []Segment { return append(slices.Clone(jf.old), jf.cur) }

func (jf *file) close() error {
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
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// FS opens the journal's segment files. Everything else (listing, reading,
// renaming) goes to the operating system directly.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
}

// File is an open segment.
type File interface {
	WriteAt(b []byte, off int64) (int, error)
	Datasync() error // fdatasync: the data durable, and the size where it grew
	Truncate(size int64) error
	Close() error
}

// osFS is the operating system's files.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type osFile struct{ *os.File }

func (f osFile) Datasync() error { return fdatasync(f.File) }
