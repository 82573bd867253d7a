package embedded

import (
	"os"
	"syscall"
)

// fdatasync flushes a file's data and only the metadata needed to read it
// back (bbolt does the same on Linux): an overwrite in place then costs no
// journal commit for the modification time.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
