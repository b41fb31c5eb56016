package tokencache

import (
	"fmt"
	"os"
	"syscall"
)

// fileStamp is what changes when a file's bytes do: its device, inode,
// modification and change times (the change time cannot be set back).
func fileStamp(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi.ModTime().String()
	}
	return fmt.Sprintf("%d:%d m%d.%09d c%d.%09d", st.Dev, st.Ino, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}
