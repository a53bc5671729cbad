package journal

import (
	"os"
	"syscall"
)

// fdatasync makes f's data durable without its metadata, unless that is
// needed to read the data back (a size that grew).
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
