package plumbing

import (
	"fmt"
	"os"
	"strconv"
	"strings"

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

// PipeSizeFor is the capacity to ask for on each of n pipes, given the
// user's soft budget of pipe pages (/proc/sys/fs/pipe-user-pages-soft; 0
// for none). Once a user's pipes hold more pages than that, the kernel
// gives every new pipe of that user, in any program, a single page, so
// gpipe takes at most a quarter of the budget for one run: DefaultPipeSize
// each while that fits, less (a power of two) for many pipes, and the
// kernel's default (-1) when even 64 KiB each would not fit.
func PipeSizeFor(n int, softPages int) int {
	if softPages <= 0 || n == 0 {
		return DefaultPipeSize
	}
	share := softPages * os.Getpagesize() / 4 / n
	size := DefaultPipeSize
	for size > share {
		size >>= 1
	}
	if size <= 64<<10 {
		return -1
	}
	return size
}

// pipeUserPagesSoft reads the soft per-user budget of pipe pages; 0 when
// it cannot be read or is unlimited.
func pipeUserPagesSoft() int {
	data, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}
