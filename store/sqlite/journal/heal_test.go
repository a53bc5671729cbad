package journal

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// syncFailFS fails every Datasync while fail is set; the writes before it
// reach the files.
type syncFailFS struct {
	mu   sync.Mutex
	fail bool
}

func (f *syncFailFS) set(fail bool) { f.mu.Lock(); f.fail = fail; f.mu.Unlock() }

func (f *syncFailFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &syncFailFile{osFile{file}, f}, nil
}

type syncFailFile struct {
	osFile
	fs *syncFailFS
}

func (f *syncFailFile) Datasync() error {
	f.fs.mu.Lock()
	fail := f.fs.fail
	f.fs.mu.Unlock()
	if fail {
		return syscall.ENOSPC
	}
	return f.osFile.Datasync()
}

// A failed append that started a new segment: Heal removes that segment,
// the journal continues with the failed seq, and a later Open reads the
// new record, never the failed one.
func TestHealAcrossARotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ffs := &syncFailFS{}
	fail := func(context.Context, []*ChangeSet) error { return errors.New("the tables are elsewhere") }
	j, err := Open(ctx, Config{Dir: dir, Materialize: func(context.Context, []*ChangeSet) error { return nil }, Files: ffs})
	if err != nil {
		t.Fatal(err)
	}
	j.WrapMaterialize(func(MaterializeFunc) MaterializeFunc { return fail }) // segments stay
	j.fileMu.Lock()
	j.f.segBytes, j.segBytes = 1, 1 // every record starts a segment of its own
	j.fileMu.Unlock()
	set := func(id string, v int64) *ChangeSet {
		return &ChangeSet{Accounts: []ledger.Account{{ID: id, Plan: ledger.PlanFree, Timezone: "UTC", Version: v}}}
	}
	for i := range 3 {
		if err := j.Append(set("A", int64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	ffs.set(true)
	if err := j.Append(set("B", 1)); err == nil {
		t.Fatal("append with a failing fdatasync succeeded")
	}
	if err := j.Heal(); err == nil {
		t.Fatal("heal while the disk fails succeeded")
	}
	ffs.set(false)
	if err := j.Heal(); err != nil {
		t.Fatalf("heal: %v", err)
	}
	if _, ok := j.Account("B"); ok {
		t.Fatal("the failed batch is visible after healing")
	}
	c := set("C", 1)
	if err := j.Append(c); err != nil || c.Seq != 4 {
		t.Fatalf("append after healing: seq %d, %v; want seq 4", c.Seq, err)
	}
	if segs := j.Segments(); len(segs) != 4 || segs[3] != (Segment{First: 4, Last: 4}) {
		t.Fatalf("segments after healing: %+v", segs)
	}
	j.Close() // the batches stay journaled: the tables never took them

	// What a restart reads: records 1-4, the fourth C's.
	_, recs, err := openFile(nil, dir, 0, noCut, segmentBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("records after healing: %d, want 4", len(recs))
	}
	got, err := DecodeChangeSet(recs[3].data)
	if err != nil || len(got.Accounts) != 1 || got.Accounts[0].ID != "C" {
		t.Fatalf("record 4 after healing: %+v, %v; want C's", got, err)
	}
}
