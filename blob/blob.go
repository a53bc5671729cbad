// Package blob stores asset bytes. Dir keeps each blob as one file under a
// directory, written to a temporary file, fsynced and renamed into place, so
// a blob is either complete or absent after a crash. Metadata lives in the
// ledger store; a blob is written before its metadata and deleted after
// it, so every recorded asset has its bytes.
package blob

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/creditd/creditd/ledger"
)

// Store is where asset bytes live.
type Store interface {
	Put(id string, data []byte) error
	Open(id string) (io.ReadSeekCloser, error)
	// Delete removes a blob; a missing id is not an error.
	Delete(id string) error
}

// Dir is a Store on the local file system.
type Dir struct{ Path string }

var safeID = regexp.MustCompile(`^[A-Za-z0-9_]{1,128}$`)

// ValidID reports whether id can name a blob: 1 to 128 ASCII letters,
// digits and underscores. Asset ids are of this form; no other id has
// bytes.
func ValidID(id string) bool { return safeID.MatchString(id) }

// NewDir creates the directory if needed.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	return &Dir{Path: path}, nil
}

// Put writes a blob durably.
func (d *Dir) Put(id string, data []byte) error {
	if !safeID.MatchString(id) {
		return fmt.Errorf("blob: bad id %q", id)
	}
	f, err := os.CreateTemp(d.Path, ".tmp-"+id+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.Path, id)); err != nil {
		return err
	}
	return d.syncDir()
}

// syncDir fsyncs the directory, so that a rename or removal in it is
// durable.
func (d *Dir) syncDir() error {
	dir, err := os.Open(d.Path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Delete removes a blob durably (the directory is fsynced); a missing id
// is not an error.
func (d *Dir) Delete(id string) error {
	if !safeID.MatchString(id) {
		return nil
	}
	err := os.Remove(filepath.Join(d.Path, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.syncDir()
}

// Open opens a blob for reading.
func (d *Dir) Open(id string) (io.ReadSeekCloser, error) {
	if !safeID.MatchString(id) {
		return nil, ledger.Errorf(ledger.ENotFound, "no asset %q", id)
	}
	f, err := os.Open(filepath.Join(d.Path, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ledger.Errorf(ledger.ENotFound, "no asset %q", id)
	}
	return f, err
}
