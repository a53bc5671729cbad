//go:build !linux

package journal

import "os"

// fdatasync is a full fsync where Linux's fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }
