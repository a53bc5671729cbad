package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Heal makes a journal whose append failed take appends again: it closes
// the segment it was writing, whose descriptor it no longer trusts, cuts
// the files back to the last acknowledged record (a record that reached
// the disk although its Append failed would otherwise be replayed by the
// next Open), reopens them, and checks that the disk takes new blocks
// (probe). It returns nil at once when no append has failed, and the
// error of the step that failed otherwise, leaving the journal refusing
// appends; the caller retries later. Reads and the materializer go on
// meanwhile.
func (j *Journal) Heal() error {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	if j.f.err == nil {
		return nil
	}
	if j.closed {
		return fmt.Errorf("journal: heal: closed")
	}
	j.mu.Lock()
	applied, committed := j.applied, j.committed
	j.mu.Unlock()
	j.f.close()
	if err := probe(j.fs, j.dir); err != nil {
		return err
	}
	f, recs, err := openFile(j.fs, j.dir, applied, committed, j.segBytes)
	if err != nil {
		return err
	}
	next := applied + 1
	if len(recs) > 0 {
		next = recs[len(recs)-1].seq + 1
	}
	if next != committed+1 {
		// An acknowledged record is not on disk: nothing healing could
		// repair. Stay failed; the next Open refuses or replays what is
		// there.
		f.close()
		return fmt.Errorf("journal: heal: the files end at record %d, %d was acknowledged", next-1, committed)
	}
	j.f = f
	j.mu.Lock()
	j.stats.Heals++
	j.mu.Unlock()
	return nil
}

// probe writes and syncs a block in a new file in dir, then removes it: a
// full disk, or one that fails writes, fails it.
func probe(fsys FS, dir string) error {
	path := filepath.Join(dir, "probe.tmp")
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: probe: %w", err)
	}
	_, err = f.WriteAt(make([]byte, probeBytes), 0)
	err = errors.Join(err, f.Datasync(), f.Close(), os.Remove(path))
	if err != nil {
		return fmt.Errorf("journal: probe: %w", err)
	}
	return nil
}

// probeBytes is the size of a probe write: a few file system blocks.
const probeBytes = 16 << 10

// Writable reports whether the journal takes appends now: nil, or the
// failed append that stops it, or the materializer's failure when the
// journal is full.
func (j *Journal) Writable() error {
	if err := j.Failed(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pendingRows >= j.tuning.PendingRowsMax && j.err != nil {
		return fmt.Errorf("journal: full, and the tables cannot take it: %w", j.err)
	}
	return nil
}
