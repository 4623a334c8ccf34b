package builtins

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// spliceSlot is a copy of an ordered par stage that runs a program,
// between pipes: each frame's bytes go from its input pipe to the
// program's stdin by splice(2), and the program's output goes on to the
// output pipe in chunks as it comes, by splice(2) too, so that no byte
// passes through user space and no block's output is held whole. handled
// is false, nothing done, when the input or the output is no pipe.
//
// Given file, the dealer's input file, a frame may say where its bytes
// are in it (frameRange) instead of holding them: the copy splices them
// from the file to the program itself, and they pass through no pipe but
// the program's.
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
	s := &slot{src: src, inFD: inFD, outFD: outFD, path: path, words: words, file: file, fileFD: -1}
	defer func() {
		if s.fileFD >= 0 {
			unix.Close(s.fileFD)
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

// feedPause is how long a copy leaves its program's full stdin pipe
// before filling it again: a program that reads a few KiB at a time from
// a pipe kept full woke the copy at every read (awk over 1 GiB at -j 2:
// 0.75 s of system time per copy, against 0.12 s from the file); after a
// pause the copy moves what the program took meanwhile in one splice.
const feedPause = time.Millisecond

type slot struct {
	src         *plumbing.FileSource
	inFD, outFD int
	path        string
	words       []string
	file        string // the dealer's input file, for frameRange chunks
	fileFD      int    // it, once open; -1 before
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

// block runs the program over one frame, whose first chunk is h.
func (s *slot) block(h chunkHeader) error {
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
		// As a shell says it, and the block is lost; the copy goes on
		// with the next ones, and fails with 127 or 126 at the end.
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		fmt.Fprintf(os.Stderr, "gpipe: par: %s: %v\n", s.path, errors.Unwrap(err))
		if derr := s.feedAway(h); derr != nil {
			return derr
		}
		return &runError{err: &ExitError{Code: code}}
	}
	// A side that fails kills the program at once: it may be blocked on
	// the other side (writing output that is no longer read, or reading
	// input that no longer comes), which would then wait for ever.
	passed := make(chan error, 1)
	go func() {
		err := s.pass(drain, func() { _ = proc.Kill() })
		if err != nil {
			_ = proc.Kill()
		}
		passed <- err
	}()
	ferr := s.feed(feed, h)
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

// feed splices the frame's chunks from the input pipe, or from the file
// for a range chunk, to the program's stdin; what the program does not
// read (it ended early) is read and dropped, so that the next frame
// starts where it should.
func (s *slot) feed(to int, h chunkHeader) error {
	gone := false // the program stopped reading
	for {
		var err error
		if h.ranged {
			gone, err = s.feedRange(to, h, gone)
		} else {
			gone, err = s.feedBytes(to, h.n, gone)
		}
		if err != nil || h.last {
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

// feedAway reads the frame whose first chunk is h and drops it.
func (s *slot) feedAway(h chunkHeader) error {
	for {
		var err error
		if h.ranged {
			var buf [rangeSize]byte
			err = s.readFull(buf[:], false)
		} else {
			err = s.drop(h.n)
		}
		if err != nil || h.last {
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

// feedBytes splices n bytes of the input pipe to the program, or drops
// them once it is gone.
func (s *slot) feedBytes(to int, n int64, gone bool) (bool, error) {
	if gone {
		return true, s.drop(n)
	}
	for n > 0 {
		k, err := unix.Splice(s.inFD, nil, to, nil, int(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if queued, qerr := unix.IoctlGetInt(s.inFD, unix.TIOCINQ); qerr == nil && queued > 0 {
				time.Sleep(feedPause) // the program's pipe is full
				continue
			}
			if err := s.src.WaitInput(s.inFD); err != nil {
				return false, err
			}
			continue
		case errors.Is(err, syscall.EPIPE):
			return true, s.drop(n)
		case err != nil:
			return false, err
		case k == 0:
			return false, errFrame
		}
		n -= k
	}
	return false, nil
}

// feedRange reads a range chunk's place and splices those bytes of the
// file to the program.
func (s *slot) feedRange(to int, h chunkHeader, gone bool) (bool, error) {
	if h.n != rangeSize || s.file == "" {
		return gone, errors.New("a block by its place in a file this copy was not given")
	}
	var buf [rangeSize]byte
	if err := s.readFull(buf[:], false); err != nil {
		return gone, err
	}
	off := int64(binary.LittleEndian.Uint64(buf[0:]))
	end := off + int64(binary.LittleEndian.Uint64(buf[8:]))
	dev, ino := binary.LittleEndian.Uint64(buf[16:]), binary.LittleEndian.Uint64(buf[24:])
	if gone {
		return true, nil
	}
	if s.fileFD < 0 {
		fd, err := unix.Open(s.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return gone, fmt.Errorf("%s: %w", s.file, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || uint64(st.Dev) != dev || st.Ino != ino {
			unix.Close(fd)
			return gone, fmt.Errorf("%s: not the file par reads any more", s.file)
		}
		s.fileFD = fd
	}
	for off < end {
		k, err := unix.Splice(s.fileFD, &off, to, nil, int(end-off), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			time.Sleep(feedPause) // the program's pipe is full
		case errors.Is(err, syscall.EPIPE):
			return true, nil
		case err != nil:
			return gone, fmt.Errorf("%s: %w", s.file, err)
		case k == 0:
			return gone, fmt.Errorf("%s: shorter than par found it", s.file)
		}
	}
	return false, nil
}

// drop reads n bytes of the input and throws them away.
func (s *slot) drop(n int64) error {
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		k := min(n, int64(len(buf)))
		if err := s.readFull(buf[:k], false); err != nil {
			return err
		}
		n -= k
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
