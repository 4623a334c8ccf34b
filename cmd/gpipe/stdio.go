package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// closedAtStart returns nil for a standard file that was closed when gpipe
// started, and f itself otherwise, so that the stages get the descriptor
// closed, as bash gives it them: reading or writing it then fails ("Bad
// file descriptor"), where a stand-in would lose the pipeline's output
// without a word.
//
// The Go runtime opens /dev/null, read-write, on each of the descriptors
// 0, 1 and 2 it finds closed, before any of gpipe's code runs, and keeps
// no note of it. gpipe takes such a descriptor, /dev/null opened
// read-write at its own number, for one that was closed. A shell opens
// /dev/null read-only for "< /dev/null" and write-only for "> /dev/null",
// as os/exec does for a nil Stdin or Stdout, so these stay what they are;
// a caller that hands gpipe /dev/null opened read-write (Python's
// subprocess.DEVNULL, Node's "ignore") is taken as closing it. gpipe asks
// this of stdout and stderr only: a closed stdin read as /dev/null loses
// nothing, and stdin=DEVNULL is too common a way to say "no input".
func closedAtStart(f *os.File, fd int) *os.File {
	if f == nil || f.Fd() != uintptr(fd) {
		return f
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		return f
	}
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_ACCMODE != unix.O_RDWR {
		return f
	}
	return nil
}
