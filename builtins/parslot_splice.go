package builtins

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// spliceSlot is a copy of an ordered par stage that runs a program,
// between pipes: each frame's bytes go from its input pipe, by splice(2),
// into a file in memory that is the program's stdin (see block), and the
// program's output goes on to the output pipe in chunks as it comes.
// handled is false, nothing done, when the input or the output is no pipe.
//
// Given file, the dealer's input file, a frame may say where its bytes
// are in it (frameRange) instead of holding them: the copy copies them
// from the file itself, and they pass through no pipe.
func spliceSlot(in plumbing.Source, out plumbing.Sink, path string, words []string, file string) (handled bool, err error) {
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
	s := &slot{src: src, inFD: inFD, outFD: outFD, path: path, words: words, file: file, fileFD: -1, memFD: -1}
	defer func() {
		if s.fileFD >= 0 {
			unix.Close(s.fileFD)
		}
		if s.memFD >= 0 {
			unix.Close(s.memFD)
		}
	}()
	var failed error
	for {
		h, err := s.head()
		if err == io.EOF {
			return true, failed
		}
		if err != nil {
			return true, err
		}
		if err := s.block(h); err != nil {
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
	file        string // the dealer's input file, for frameRange chunks
	fileFD      int    // it, once open; -1 before
	memFD       int    // the file in memory a block is put in; -1 before
}

// chunkHeader is a chunk's header: n bytes follow; a range chunk's say
// where the bytes are in the file.
type chunkHeader struct {
	n            int64
	last, ranged bool
}

// runError is a run of the program that failed: the copy goes on with
// the next block.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// head reads a chunk header from the input pipe, no more: io.EOF at a
// clean end.
func (s *slot) head() (chunkHeader, error) {
	var buf [8]byte
	if err := s.readFull(buf[:], true); err != nil {
		return chunkHeader{}, err
	}
	h := binary.LittleEndian.Uint64(buf[:])
	return chunkHeader{n: int64(h &^ (frameLast | frameRange)), last: h&frameLast != 0, ranged: h&frameRange != 0}, nil
}

// readFull reads len(p) bytes of the input pipe; io.EOF if it ends before
// the first when atStart, errFrame if it ends later.
func (s *slot) readFull(p []byte, atStart bool) error {
	got := 0
	for got < len(p) {
		k, err := unix.Read(s.inFD, p[got:])
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
		case k == 0 && got == 0 && atStart:
			return io.EOF
		case k == 0:
			return errFrame
		}
		got += k
	}
	return nil
}

// block runs the program over one frame, whose first chunk is h. The
// frame's bytes go first into a file in memory (memfd), which is then the
// program's stdin: a program reads a file in large reads, where a pipe the
// copy kept full woke the copy at every read of a few KiB (awk over 1 GiB
// at -j 2 spent 0.75 s of system time per copy on it, 0.12 s reading the
// file). It costs a copy of the block in the kernel, and the block's size
// in memory while its program runs.
func (s *slot) block(h chunkHeader) error {
	if err := s.fill(h); err != nil {
		return err
	}
	var stdout [2]int
	if err := unix.Pipe2(stdout[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	_, _ = unix.FcntlInt(uintptr(stdout[1]), unix.F_SETPIPE_SZ, slotPipe)
	in, err := unix.Dup(s.memFD) // the program's, closed once it has started
	if err != nil {
		unix.Close(stdout[0])
		unix.Close(stdout[1])
		return err
	}
	progIn, progOut := os.NewFile(uintptr(in), "stdin"), os.NewFile(uintptr(stdout[1]), "stdout")
	proc, err := os.StartProcess(s.path, s.words, &os.ProcAttr{Files: []*os.File{progIn, progOut, os.Stderr}})
	progIn.Close()
	progOut.Close()
	drain := stdout[0]
	if err != nil {
		unix.Close(drain)
		// As a shell says it, and the block is lost; the copy goes on
		// with the next ones, and fails with 127 or 126 at the end.
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		fmt.Fprintf(os.Stderr, "gpipe: par: %s: %v\n", s.path, errors.Unwrap(err))
		return &runError{err: &ExitError{Code: code}}
	}
	// A failure to pass the output on kills the program at once: it may
	// be blocked writing output that is no longer read.
	perr := s.pass(drain, func() { _ = proc.Kill() })
	unix.Close(drain)
	if perr != nil {
		_ = proc.Kill()
	}
	state, werr := proc.Wait()
	switch {
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

// fill puts the frame whose first chunk is h into the memory file, from
// the start: bytes from the input pipe by splice(2), a range of the input
// file by copy_file_range(2) (read and written, where the kernel cannot).
func (s *slot) fill(h chunkHeader) error {
	if s.memFD < 0 {
		fd, err := unix.MemfdCreate("gpipe-par-block", unix.MFD_CLOEXEC)
		if err != nil {
			return err
		}
		s.memFD = fd
	}
	// Written over from the start, and cut to its length after: the
	// pages of the last block are used again, not freed and zeroed anew.
	var at int64
	for {
		var err error
		if h.ranged {
			err = s.fillRange(h, &at)
		} else {
			err = s.fillBytes(h.n, &at)
		}
		if err != nil {
			return err
		}
		if h.last {
			if err := unix.Ftruncate(s.memFD, at); err != nil {
				return err
			}
			_, err = unix.Seek(s.memFD, 0, io.SeekStart)
			return err
		}
		if h, err = s.head(); err != nil {
			if err == io.EOF {
				err = errFrame
			}
			return err
		}
	}
}

// fillBytes splices n bytes of the input pipe into the memory file at *at.
func (s *slot) fillBytes(n int64, at *int64) error {
	for n > 0 {
		k, err := unix.Splice(s.inFD, nil, s.memFD, at, int(n), unix.SPLICE_F_MOVE)
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
		n -= k
	}
	return nil
}

// fillRange reads a range chunk's place and copies those bytes of the
// input file into the memory file at *at.
func (s *slot) fillRange(h chunkHeader, at *int64) error {
	if h.n != rangeSize || s.file == "" {
		return errors.New("a block by its place in a file this copy was not given")
	}
	var buf [rangeSize]byte
	if err := s.readFull(buf[:], false); err != nil {
		return err
	}
	off := int64(binary.LittleEndian.Uint64(buf[0:]))
	end := off + int64(binary.LittleEndian.Uint64(buf[8:]))
	dev, ino := binary.LittleEndian.Uint64(buf[16:]), binary.LittleEndian.Uint64(buf[24:])
	if s.fileFD < 0 {
		fd, err := unix.Open(s.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", s.file, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || uint64(st.Dev) != dev || st.Ino != ino {
			unix.Close(fd)
			return fmt.Errorf("%s: not the file par reads any more", s.file)
		}
		s.fileFD = fd
	}
	for off < end {
		k, err := unix.CopyFileRange(s.fileFD, &off, s.memFD, at, int(end-off), 0)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EXDEV || err == syscall.EINVAL || err == syscall.ENOSYS || err == syscall.EOPNOTSUPP:
			return s.copyRange(&off, end, at)
		case err != nil:
			return fmt.Errorf("%s: %w", s.file, err)
		case k == 0:
			return fmt.Errorf("%s: shorter than par found it", s.file)
		}
	}
	return nil
}

// copyRange copies the input file from *off to end into the memory file
// at *at through user space.
func (s *slot) copyRange(off *int64, end int64, at *int64) error {
	buf := make([]byte, min(end-*off, 1<<20))
	for *off < end {
		n, err := unix.Pread(s.fileFD, buf[:min(int64(len(buf)), end-*off)], *off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.file, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: shorter than par found it", s.file)
		}
		if _, err := unix.Pwrite(s.memFD, buf[:n], *at); err != nil {
			return err
		}
		*off += int64(n)
		*at += int64(n)
	}
	return nil
}

// pass passes the program's output on to the output pipe in chunks, and
// ends the frame when the program's output ends. What the output pipe
// cannot take yet (the merge reads the copies in turn, and waits for
// another copy's block) is held in a queue, in memory up to
// slotOutputBuffer and past that in an unlinked temporary file, as tee
// holds an output's bytes: the program never waits for its turn. A
// failure to write kills the program (kill), whose output is then read
// to its end and dropped.
func (s *slot) pass(from int, kill func()) error {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	q := newQueue(&mu, cond, slotOutputBuffer)
	written := make(chan error, 1)
	go func() {
		scratch := make([]byte, blockSize)
		var err error
		for err == nil {
			err = q.next(scratch, func(p []byte) error {
				head := chunkHead(len(p), false)
				if err := s.write(head[:]); err != nil {
					return err
				}
				return s.write(p)
			})
		}
		if err == io.EOF {
			head := chunkHead(0, true)
			err = s.write(head[:])
		}
		if err != nil {
			mu.Lock()
			q.drop()
			mu.Unlock()
			kill()
		}
		written <- err
	}()
	var rerr error
	for {
		b := newBlock()
		n, err := unix.Read(from, b.buf)
		if n > 0 {
			b.n = n
			mu.Lock()
			q.push(b)
			mu.Unlock()
		}
		b.unref()
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			rerr = err
			break
		}
	}
	mu.Lock()
	q.close()
	mu.Unlock()
	werr := <-written
	q.release() // its temporary file, if it had one

	if werr != nil {
		return werr
	}
	return rerr
}

// slotOutputBuffer is how much of a block's output a copy holds in memory
// while the merge reads the others; the rest waits in a temporary file.
const slotOutputBuffer = 64 << 20

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
