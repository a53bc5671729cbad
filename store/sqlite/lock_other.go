//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// lockFile is not implemented here: without an exclusive lock two processes
// could write the same database, so Open refuses to run.
func lockFile(path string) (*os.File, error) {
	return nil, errors.New("sqlite: exclusive file locking is not supported on this platform")
}

func unlockFile(f *os.File) error { return f.Close() }
