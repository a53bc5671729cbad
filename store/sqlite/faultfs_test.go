package sqlite

import (
	"os"
	"sync"

	"github.com/creditd/creditd/store/sqlite/journal"
)

// faultFS is a journal.FS whose segment writes and syncs fail on demand:
// a disk that is full (ENOSPC) or loses a write (EIO).
type faultFS struct {
	mu        sync.Mutex
	writeErr  error // every WriteAt fails with it while set
	syncErr   error // every Datasync fails with it while set (the write before it reached the file)
	truncErr  error // every Truncate fails with it while set
	failures  int   // calls failed so far
	truncates int   // truncations done
}

func (f *faultFS) set(write, sync, trunc error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr, f.syncErr, f.truncErr = write, sync, trunc
}

func (f *faultFS) fail(which *error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *which != nil {
		f.failures++
	}
	return *which
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (journal.File, error) {
	file, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.fail(&f.fs.writeErr); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Datasync() error {
	if err := f.fs.fail(&f.fs.syncErr); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.fail(&f.fs.truncErr); err != nil {
		return err
	}
	f.fs.mu.Lock()
	f.fs.truncates++
	f.fs.mu.Unlock()
	return f.File.Truncate(size)
}
