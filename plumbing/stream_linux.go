package plumbing

import (
	"golang.org/x/sys/unix"

	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// Source is a builtin stage's input. Bytes are looked at in place and then
// released, so a ring's data is never copied on the way in.
type Source interface {
	// Peek returns unread bytes once at least atLeast are there (capped at
	// MaxPeek), waiting as needed; it may return more than asked, and a
	// ring returns at most a step more. The slice is valid until the next
	// Release or Peek. At the end of the input it returns what is left
	// with io.EOF; an input that broke off returns another error.
	Peek(atLeast int) ([]byte, error)
	// Release marks the first n peeked bytes as consumed.
	Release(n int)
	// Close stops reading: a writer still writing gets a broken pipe.
	Close() error
	// MaxPeek is the most a Peek waits for.
	MaxPeek() int
}

// Sink is a builtin stage's output. Bytes are produced in place.
type Sink interface {
	// Reserve returns writable space of at least atLeast bytes (capped at
	// MaxReserve), waiting as needed. The slice is valid until Commit.
	// Once the reader has gone it fails with syscall.EPIPE.
	Reserve(atLeast int) ([]byte, error)
	// Commit publishes the first n bytes of the last reserved space;
	// several Commits may share one Reserve, up to its length.
	Commit(n int)
	// Flush hands what is committed to the reader now, rather than in
	// the next batch: a builtin's output is flushed each time it is about
	// to wait for input (see FlushBeforeWait).
	Flush() error
	// Close publishes everything committed and ends the output.
	Close() error
	// MaxReserve is the most a Reserve waits for.
	MaxReserve() int
}

// FlushBeforeWait makes in flush out each time it is about to wait for
// input, so that a slow trickle through a builtin is passed on at once
// instead of waiting for a batch to fill.
//
// A builtin that uses in and out from different goroutines (tee, merge)
// must undo it with NoFlushBeforeWait, and flush out itself.
func FlushBeforeWait(in Source, out Sink) {
	if w, ok := in.(interface{ OnWait(func()) }); ok {
		w.OnWait(func() { _ = out.Flush() })
	}
}

// NoFlushBeforeWait undoes FlushBeforeWait on in.
func NoFlushBeforeWait(in Source) {
	if w, ok := in.(interface{ OnWait(func()) }); ok {
		w.OnWait(nil)
	}
}

// Stoppable is an end that a Stop can interrupt: every end of plumbing's.
type Stoppable interface{ SetStop(*Stop) }

// Parkable is an end whose waits park the goroutine (a ring's), and that
// says so before and after: see RingReader.OnPark.
type Parkable interface{ OnPark(park, unpark func()) }

// MaxPeek caps a ring reader's Peek at half the ring.
func (rd *RingReader) MaxPeek() int { return MaxWait(rd.Size()) }

// MaxReserve caps a ring writer's Reserve at half the ring.
func (w *RingWriter) MaxReserve() int { return MaxWait(w.Size()) }

// StreamBufferSize is the buffer of a builtin's pipe or file end: large, so
// that a builtin between external programs makes few system calls.
const StreamBufferSize = 1 << 20

// FileSource reads a pipe or file through a large buffer.
type FileSource struct {
	f          *os.File
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	err        error
	stop       *Stop
	polled     bool // f is in the runtime's poller, where the Stop ends a read
	watchReads bool // poll the file and the stop before each read
	noWriter   bool // a FIFO no writer has opened yet (WaitFirstWriter)
	onWait     func()
	parked     parkHooks
}

// parkHooks are a stream end's OnPark hooks: called around each read or
// write of its file, which may wait in the runtime's poller, so that an
// in-process stage keeps its CPU account there as it does on a ring.
type parkHooks struct{ park, unpark func() }

// OnPark sets the hooks.
func (h *parkHooks) OnPark(park, unpark func()) { h.park, h.unpark = park, unpark }

// around calls f between the hooks, when set.
func (h *parkHooks) around(f func()) {
	if h.park == nil {
		f()
		return
	}
	h.park()
	f()
	h.unpark()
}

// NewFileSource reads f, which the source owns and closes.
func NewFileSource(f *os.File) *FileSource {
	return &FileSource{f: f, buf: make([]byte, StreamBufferSize)}
}

func (s *FileSource) MaxPeek() int { return len(s.buf) / 2 }

// SetStop makes Peek fail with ErrStopped once st is closed, and, when
// the file is in the runtime's poller (see Stop), a read that waits.
func (s *FileSource) SetStop(st *Stop) { s.stop, s.polled = st, st.watch(s.f) }

// WatchReads makes the Stop end a Peek that waits in a read too: each read
// is preceded by a poll of the file and the Stop. That costs a system call
// per read (7% of a 4 GiB stream through a pipe), so it is for a source
// whose writer no teardown reaches: gpipe's own stdin, a terminal above
// all. A file in the runtime's poller needs none (see SetStop), and does
// without.
func (s *FileSource) WatchReads() { s.watchReads = true }

// WaitFirstWriter is for a named FIFO opened for reading without waiting
// for a writer (O_NONBLOCK, so that no open(2) blocks where a teardown
// cannot reach it): the first Peek, Read or PipeFD waits until a writer
// has come (WaitFIFOWriter), since a read before that would be end of
// file. Each input waits when it is first read, not when it is opened, so
// that a builtin reading several (merge) passes on the first one's bytes
// without waiting for the others' writers.
func (s *FileSource) WaitFirstWriter() { s.noWriter = true }

// firstWriter waits for the first writer, once.
func (s *FileSource) firstWriter() error {
	if !s.noWriter {
		return nil
	}
	if err := WaitFIFOWriter(s.f, s.stop); err != nil {
		return err
	}
	s.noWriter = false
	return nil
}

// OnWait sets f to be called before each read, which may wait.
func (s *FileSource) OnWait(f func()) { s.onWait = f }

func (s *FileSource) Peek(atLeast int) ([]byte, error) {
	if s.stop.Stopped() {
		return nil, ErrStopped
	}
	want := min(max(atLeast, 1), s.MaxPeek())
	for s.end-s.start < want && s.err == nil {
		if s.start > 0 && len(s.buf)-s.end < want {
			s.end = copy(s.buf, s.buf[s.start:s.end])
			s.start = 0
		}
		if s.onWait != nil {
			s.onWait()
		}
		if err := s.firstWriter(); err != nil {
			return nil, err
		}
		if s.watchReads && !s.polled {
			// A read of a terminal or an idle pipe may wait for ever: wait
			// for input or the stop first.
			if err := s.stop.waitReadable(int(s.f.Fd())); err != nil {
				return nil, err
			}
		}
		var n int
		var err error
		s.parked.around(func() { n, err = s.f.Read(s.buf[s.end:]) })
		s.end += n
		if err != nil {
			s.err = err
		}
	}
	if s.end-s.start < want || (s.err != nil && s.start == s.end) {
		if s.err != nil && s.stop.Stopped() {
			// Its writer was torn down with this stage: no end of input.
			return nil, ErrStopped
		}
		return s.buf[s.start:s.end], s.err
	}
	return s.buf[s.start:s.end], nil
}

// Read reads into p: what the buffer holds first, else straight from the
// file, with no copy in user space. It heeds the Stop as Peek does.
func (s *FileSource) Read(p []byte) (int, error) {
	if s.stop.Stopped() {
		return 0, ErrStopped
	}
	if s.end > s.start {
		n := copy(p, s.buf[s.start:s.end])
		s.Release(n)
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.onWait != nil {
		s.onWait()
	}
	if err := s.firstWriter(); err != nil {
		return 0, err
	}
	if s.watchReads && !s.polled {
		if err := s.stop.waitReadable(int(s.f.Fd())); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	s.parked.around(func() { n, err = s.f.Read(p) })
	if err != nil && s.stop.Stopped() {
		err = ErrStopped // the Stop ended the read, or its writer went with it
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// OnPark sets hooks called around each read of the file (Parkable).
func (s *FileSource) OnPark(park, unpark func()) { s.parked.OnPark(park, unpark) }

func (s *FileSource) Release(n int) {
	s.start += n
	if s.start == s.end {
		s.start, s.end = 0, 0
	}
}

// Close closes the file; later calls do nothing. On a regular file, what
// was read ahead but not released is given back first (the offset moves
// back to just after the last released byte), as GNU head does, so that
// whoever shares the file's offset reads on from there.
func (s *FileSource) Close() error {
	if s.f == nil {
		return nil
	}
	f := s.f
	if unread := s.end - s.start; unread > 0 {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			_, _ = f.Seek(int64(-unread), io.SeekCurrent)
		}
	}
	s.f, s.err = nil, os.ErrClosed
	return f.Close()
}

// FileSink writes a pipe or file through a large buffer.
type FileSink struct {
	f      *os.File
	buf    []byte
	n      int   // committed, not yet written
	err    error // the first write error, returned from then on
	stop   *Stop
	parked parkHooks
	closed func() // called once the file is closed, if set
}

// OnClose sets f to be called once, right after Close closed the file:
// for an owner that holds another descriptor of the same file and must
// let it go then (a helper's descriptor 1).
func (s *FileSink) OnClose(f func()) { s.closed = f }

// OnPark sets hooks called around each write of the file (Parkable).
func (s *FileSink) OnPark(park, unpark func()) { s.parked.OnPark(park, unpark) }

// NewFileSink writes to f, which the sink owns and closes.
func NewFileSink(f *os.File) *FileSink {
	return &FileSink{f: f, buf: make([]byte, StreamBufferSize)}
}

func (s *FileSink) MaxReserve() int { return len(s.buf) / 2 }

// SetStop makes Reserve fail with ErrStopped once st is closed, and, when
// the file is in the runtime's poller (see Stop), a write that waits.
func (s *FileSink) SetStop(st *Stop) {
	s.stop = st
	st.watch(s.f)
}

func (s *FileSink) Reserve(atLeast int) ([]byte, error) {
	if s.stop.Stopped() {
		return nil, ErrStopped
	}
	if s.err != nil {
		return nil, s.err // a flush before a wait failed
	}
	want := min(max(atLeast, 1), s.MaxReserve())
	if len(s.buf)-s.n < want {
		if err := s.Flush(); err != nil {
			return nil, err
		}
	}
	return s.buf[s.n:], nil
}

func (s *FileSink) Commit(n int) { s.n += n }

// Flush writes what is committed.
func (s *FileSink) Flush() error {
	if s.err == nil && s.n > 0 {
		if s.f == nil {
			s.err = os.ErrClosed
		} else {
			s.parked.around(func() { _, s.err = s.f.Write(s.buf[:s.n]) })
			s.err = s.stoppedIf(s.err)
		}
	}
	s.n = 0
	return s.err
}

// stoppedIf turns a broken pipe into ErrStopped once the Stop is closed
// (the reader was torn down with this builtin, it did not leave it), and
// so the end of a write that the Stop ended (see SetStop).
func (s *FileSink) stoppedIf(err error) error {
	if err != nil && (IsBrokenPipe(err) || errors.Is(err, os.ErrDeadlineExceeded)) && s.stop.Stopped() {
		return ErrStopped
	}
	return err
}

func (s *FileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := errors.Join(s.Flush(), s.f.Close())
	s.f = nil
	if s.closed != nil {
		s.closed()
	}
	return err
}

// Write writes p: what is committed first, then p straight to the file,
// with no copy in user space.
func (s *FileSink) Write(p []byte) (int, error) {
	if s.stop.Stopped() {
		return 0, ErrStopped
	}
	if err := s.Flush(); err != nil {
		return 0, err
	}
	if s.f == nil {
		s.err = os.ErrClosed
		return 0, s.err
	}
	var n int
	var err error
	s.parked.around(func() { n, err = s.f.Write(p) })
	if err != nil {
		err = s.stoppedIf(err)
		s.err = err
	}
	return n, err
}

// IsBrokenPipe reports whether err means the reader has gone.
func IsBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

// Write copies p to a sink: straight to its file when it writes one.
func Write(s Sink, p []byte) error {
	if f, ok := s.(*FileSink); ok && len(p) >= f.MaxReserve()/4 {
		_, err := f.Write(p)
		return err
	}
	for len(p) > 0 {
		buf, err := s.Reserve(1)
		if err != nil {
			return err
		}
		n := copy(buf, p)
		s.Commit(n)
		p = p[n:]
	}
	return nil
}

var (
	_ Source = (*RingReader)(nil)
	_ Source = (*FileSource)(nil)
	_ Sink   = (*RingWriter)(nil)
	_ Sink   = (*FileSink)(nil)
)

// pipeFD returns f's descriptor if f is a pipe or FIFO, without putting it
// into blocking mode as File.Fd does.
func pipeFD(f *os.File) (int, bool) {
	if f == nil {
		return -1, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd, ok := -1, false
	_ = rc.Control(func(d uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(d), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
			fd, ok = int(d), true
		}
	})
	return fd, ok
}

// SpliceFD returns the descriptor of the sink's file when it is a regular
// file (not opened to append) or /dev/null, with nothing buffered and no
// error: a writer may splice(2) bytes from a pipe into it, which moves
// them without a copy through user space. The sink still owns it.
func (s *FileSink) SpliceFD() (int, bool) {
	if s.n != 0 || s.err != nil || s.f == nil {
		return -1, false
	}
	rc, err := s.f.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd, ok := -1, false
	_ = rc.Control(func(d uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(d), &st) != nil {
			return
		}
		fl, err := unix.FcntlInt(d, unix.F_GETFL, 0)
		if err != nil || fl&unix.O_APPEND != 0 {
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			fd, ok = int(d), true
		case unix.S_IFCHR:
			if unix.Major(st.Rdev) == 1 && unix.Minor(st.Rdev) == 3 { // /dev/null
				fd, ok = int(d), true
			}
		}
	})
	return fd, ok
}

// PipeFD returns the descriptor of the source's file when it is a pipe
// with nothing read ahead, for a builtin that moves its bytes with tee(2)
// and splice(2) instead of reading them. The source still owns it.
func (s *FileSource) PipeFD() (int, bool) {
	if s.end != s.start || s.err != nil {
		return -1, false
	}
	if s.noWriter {
		// Its first writer is waited for by Peek, which says why when
		// a teardown ends the wait.
		return -1, false
	}
	return pipeFD(s.f)
}

// RegularFD returns the descriptor of the source's file when it is a
// regular file with nothing read ahead, and the file's offset: a builtin
// may move its bytes with splice(2), from explicit offsets, instead of
// reading them, and then SeekTo where it stopped. The source still owns it.
func (s *FileSource) RegularFD() (fd int, offset int64, ok bool) {
	if s.end != s.start || s.err != nil || s.f == nil {
		return -1, 0, false
	}
	rc, err := s.f.SyscallConn()
	if err != nil {
		return -1, 0, false
	}
	_ = rc.Control(func(d uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(d), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return
		}
		if off, err := unix.Seek(int(d), 0, io.SeekCurrent); err == nil {
			fd, offset, ok = int(d), off, true
		}
	})
	return fd, offset, ok
}

// SeekTo sets the offset of the file of a source used through RegularFD:
// where its reader stopped, as if it had read the bytes.
func (s *FileSource) SeekTo(offset int64) error {
	_, err := s.f.Seek(offset, io.SeekStart)
	return err
}

// Stat is the source's file's.
func (s *FileSource) Stat() (os.FileInfo, error) { return s.f.Stat() }

// Stopped reports whether the source's Stop is closed (a teardown).
func (s *FileSource) Stopped() bool { return s.stop.Stopped() }

// WaitInput waits until the source's pipe has bytes or no writer left, or
// the Stop is closed (ErrStopped). Only for a source used through PipeFD.
func (s *FileSource) WaitInput(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if sfd := s.stop.fd(); sfd >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(sfd), Events: unix.POLLIN})
	}
	for {
		if s.stop.Stopped() {
			return ErrStopped
		}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return err
		}
		if fds[0].Revents != 0 {
			return nil
		}
	}
}

// WaitWritable waits up to timeout until one of the pipes fds has room,
// or the source's Stop is closed (ErrStopped); it reports whether one
// has. Only for a source used through PipeFD: a tee that waits for room
// in its outputs heeds the same teardown as its waits for input.
func (s *FileSource) WaitWritable(fds []int, timeout time.Duration) (bool, error) {
	polls := make([]unix.PollFd, 0, len(fds)+1)
	for _, fd := range fds {
		polls = append(polls, unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT})
	}
	if sfd := s.stop.fd(); sfd >= 0 {
		polls = append(polls, unix.PollFd{Fd: int32(sfd), Events: unix.POLLIN})
	}
	if s.stop.Stopped() {
		return false, ErrStopped
	}
	n, err := unix.Poll(polls, int(timeout.Milliseconds()))
	switch {
	case s.stop.Stopped():
		return false, ErrStopped
	case err == unix.EINTR:
		return false, nil
	case err != nil:
		return false, err
	}
	return n > 0, nil
}

// PipeFD returns the descriptor of the sink's file when it is a pipe with
// nothing buffered and no error, for a writer that tees bytes into it. The
// sink still owns it.
func (s *FileSink) PipeFD() (int, bool) {
	if s.n != 0 || s.err != nil {
		return -1, false
	}
	return pipeFD(s.f)
}
