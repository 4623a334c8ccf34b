package builtins

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// spliceSlot is a copy of an ordered par stage that runs a program,
// between pipes: each frame's bytes go from its input pipe to the
// program's stdin by splice(2), and the program's output goes on to the
// output pipe in chunks as it comes, by splice(2) too, so that no byte
// passes through user space and no block's output is held whole. handled
// is false, nothing done, when the input or the output is no pipe.
func spliceSlot(in plumbing.Source, out plumbing.Sink, path string, words []string) (handled bool, err error) {
	src, ok := in.(*plumbing.FileSource)
	if !ok {
		return false, nil
	}
	inFD, ok := src.PipeFD()
	if !ok {
		return false, nil
	}
	outFD, ok := pipeSink(out)
	if !ok {
		return false, nil
	}
	s := &slot{src: src, inFD: inFD, outFD: outFD, path: path, words: words}
	var failed error
	for {
		n, last, err := s.head()
		if err == io.EOF {
			return true, failed
		}
		if err != nil {
			return true, err
		}
		if err := s.block(n, last); err != nil {
			if errors.As(err, new(*runError)) {
				if failed == nil {
					failed = slotFailure(errors.Unwrap(err))
				}
				continue
			}
			return true, err
		}
	}
}

// slotPipe is the size asked for the pipes of a copy's program.
const slotPipe = 1 << 20

type slot struct {
	src         *plumbing.FileSource
	inFD, outFD int
	path        string
	words       []string
}

// runError is a run of the program that failed: the copy goes on with
// the next block.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// head reads a chunk header from the input pipe, no more: io.EOF at a
// clean end.
func (s *slot) head() (n int64, last bool, err error) {
	var buf [8]byte
	got := 0
	for got < 8 {
		k, err := unix.Read(s.inFD, buf[got:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if err := s.src.WaitInput(s.inFD); err != nil {
				return 0, false, err
			}
			continue
		case err != nil:
			return 0, false, err
		case k == 0 && got == 0:
			return 0, false, io.EOF
		case k == 0:
			return 0, false, errFrame
		}
		got += k
	}
	h := binary.LittleEndian.Uint64(buf[:])
	return int64(h &^ frameLast), h&frameLast != 0, nil
}

// block runs the program over one frame, whose first chunk has n bytes.
func (s *slot) block(n int64, last bool) error {
	var stdin, stdout [2]int
	if err := unix.Pipe2(stdin[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	if err := unix.Pipe2(stdout[:], unix.O_CLOEXEC); err != nil {
		unix.Close(stdin[0])
		unix.Close(stdin[1])
		return err
	}
	// Large pipes: fewer switches between the program and the copy.
	_, _ = unix.FcntlInt(uintptr(stdin[1]), unix.F_SETPIPE_SZ, slotPipe)
	_, _ = unix.FcntlInt(uintptr(stdout[1]), unix.F_SETPIPE_SZ, slotPipe)
	progIn, progOut := os.NewFile(uintptr(stdin[0]), "stdin"), os.NewFile(uintptr(stdout[1]), "stdout")
	proc, err := os.StartProcess(s.path, s.words, &os.ProcAttr{Files: []*os.File{progIn, progOut, os.Stderr}})
	progIn.Close()
	progOut.Close()
	feed, drain := stdin[1], stdout[0]
	if err != nil {
		unix.Close(feed)
		unix.Close(drain)
		return fmt.Errorf("%s: %w", s.words[0], err)
	}
	// A side that fails kills the program at once: it may be blocked on
	// the other side (writing output that is no longer read, or reading
	// input that no longer comes), which would then wait for ever.
	passed := make(chan error, 1)
	go func() {
		err := s.pass(drain)
		if err != nil {
			_ = proc.Kill()
		}
		passed <- err
	}()
	ferr := s.feed(feed, n, last)
	unix.Close(feed)
	if ferr != nil {
		_ = proc.Kill()
	}
	perr := <-passed
	unix.Close(drain)
	state, werr := proc.Wait()
	switch {
	case ferr != nil:
		return ferr
	case perr != nil:
		return perr
	case werr != nil:
		return werr
	case !state.Success():
		return &runError{err: &exitState{state}}
	}
	return nil
}

// exitState is a program's unsuccessful end, as SlotExit reads it.
type exitState struct{ *os.ProcessState }

func (e *exitState) Error() string { return e.ProcessState.String() }

// feed splices the frame's chunks from the input pipe to the program's
// stdin; what the program does not read (it ended early) is read and
// dropped, so that the next frame starts where it should.
func (s *slot) feed(to int, n int64, last bool) error {
	for {
		for n > 0 {
			k, err := unix.Splice(s.inFD, nil, to, nil, int(n), unix.SPLICE_F_MOVE)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				if err := s.src.WaitInput(s.inFD); err != nil {
					return err
				}
				continue
			case errors.Is(err, syscall.EPIPE):
				if err := s.drop(n); err != nil {
					return err
				}
				k = n
			case err != nil:
				return err
			case k == 0:
				return errFrame
			}
			n -= k
		}
		if last {
			return nil
		}
		var err error
		if n, last, err = s.head(); err != nil {
			if err == io.EOF {
				err = errFrame
			}
			return err
		}
	}
}

// drop reads n bytes of the input and throws them away.
func (s *slot) drop(n int64) error {
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		k, err := unix.Read(s.inFD, buf[:min(n, int64(len(buf)))])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if err := s.src.WaitInput(s.inFD); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case k == 0:
			return errFrame
		}
		n -= int64(k)
	}
	return nil
}

// pass splices the program's output, as it comes, to the output pipe in
// chunks (a header, then the bytes, moved through a pipe of its own to
// learn their number), and ends the frame when the program's output does.
func (s *slot) pass(from int) error {
	var mid [2]int
	if err := unix.Pipe2(mid[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(mid[0])
	defer unix.Close(mid[1])
	size, err := unix.FcntlInt(uintptr(mid[1]), unix.F_SETPIPE_SZ, slotPipe)
	if err != nil {
		size = 64 << 10
	}
	for {
		n, err := unix.Splice(from, nil, mid[1], nil, size, unix.SPLICE_F_MOVE)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			head := chunkHead(0, true)
			return s.write(head[:])
		}
		// Gather what else is there already, for fewer, larger chunks.
		for n < int64(size) {
			k, err := unix.Splice(from, nil, mid[1], nil, size-int(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if err != nil || k == 0 {
				break
			}
			n += k
		}
		head := chunkHead(int(n), false)
		if err := s.write(head[:]); err != nil {
			return err
		}
		for n > 0 {
			k, err := unix.Splice(mid[0], nil, s.outFD, nil, int(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == syscall.EINTR:
			case err == syscall.EAGAIN:
				if _, err := s.src.WaitWritable([]int{s.outFD}, lagCheck); err != nil {
					return err
				}
			case err != nil:
				return err
			default:
				n -= k
			}
		}
	}
}

// write writes p whole to the output pipe.
func (s *slot) write(p []byte) error {
	for len(p) > 0 {
		k, err := unix.Write(s.outFD, p)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if _, err := s.src.WaitWritable([]int{s.outFD}, lagCheck); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			p = p[k:]
		}
	}
	return nil
}
