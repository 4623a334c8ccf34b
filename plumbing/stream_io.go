package plumbing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// minStreamBuffer is the smallest buffer a ReaderSource or WriterSink
// takes: a smaller size asked for is raised to it.
const minStreamBuffer = 16

// maxEmptyReads is how many reads in a row may return nothing and no
// error before a ReaderSource gives up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// ReaderSource is a Source that reads any io.Reader through a buffer of
// its own: how a Go program feeds a builtin from memory, a network
// connection or anything else that is not a file (a *os.File reads
// better through a FileSource, which the Stop can interrupt). The bytes
// are copied once, into the buffer. It is not safe for concurrent use.
//
// The source does not own the reader: Close does not close it, as os/exec
// does not close a command's Stdin. A short read, even of zero bytes, is
// read again; an error that comes with bytes is returned after them.
type ReaderSource struct {
	r          io.Reader
	buf        []byte
	start, end int   // unread bytes are buf[start:end]
	err        error // the reader's first error, io.EOF at its end
	stop       *Stop
	onWait     func()
}

// NewReaderSource reads r through a buffer of StreamBufferSize bytes.
func NewReaderSource(r io.Reader) *ReaderSource { return NewReaderSourceSize(r, StreamBufferSize) }

// NewReaderSourceSize reads r through a buffer of size bytes (at least
// 16): MaxPeek is half of it.
func NewReaderSourceSize(r io.Reader, size int) *ReaderSource {
	return &ReaderSource{r: r, buf: make([]byte, max(size, minStreamBuffer))}
}

// MaxPeek is half the buffer.
func (s *ReaderSource) MaxPeek() int { return len(s.buf) / 2 }

// SetStop makes Peek fail with ErrStopped once st is closed (nil: never).
// A Read already waiting in the reader is not interrupted: whoever holds
// the reader's other end ends it (closing an io.PipeWriter, say).
func (s *ReaderSource) SetStop(st *Stop) { s.stop = st }

// OnWait sets f to be called before each read of the reader, which may
// wait (see FlushBeforeWait); nil calls nothing.
func (s *ReaderSource) OnWait(f func()) { s.onWait = f }

// Peek returns the unread bytes once at least atLeast are there (capped at
// MaxPeek, 0 meaning 1), reading as needed: all the buffer holds, which
// may be more than asked. The slice is valid until the next Peek or
// Release. At the end of the input it returns what is left with io.EOF;
// when the reader failed, what is left with its error; after Close,
// os.ErrClosed; once the Stop is closed, ErrStopped.
func (s *ReaderSource) Peek(atLeast int) ([]byte, error) {
	if s.stop.Stopped() {
		return nil, ErrStopped
	}
	want := min(max(atLeast, 1), s.MaxPeek())
	for empty := 0; s.end-s.start < want && s.err == nil; {
		if s.start > 0 && len(s.buf)-s.end < want {
			s.end = copy(s.buf, s.buf[s.start:s.end])
			s.start = 0
		}
		if s.onWait != nil {
			s.onWait()
		}
		n, err := s.r.Read(s.buf[s.end:])
		if n < 0 || n > len(s.buf)-s.end {
			n, err = 0, fmt.Errorf("read: the reader returned %d bytes for a buffer of %d", n, len(s.buf)-s.end)
		}
		s.end += n
		switch {
		case err != nil:
			s.err = err
		case n > 0:
			empty = 0
		default:
			if empty++; empty >= maxEmptyReads {
				s.err = io.ErrNoProgress
			}
		}
	}
	if s.end-s.start < want || (s.err != nil && s.start == s.end) {
		if s.err != nil && s.stop.Stopped() {
			return nil, ErrStopped // its writer was torn down with this stage
		}
		return s.buf[s.start:s.end], s.err
	}
	return s.buf[s.start:s.end], nil
}

// Release marks the first n peeked bytes as consumed. Releasing more than
// was peeked is a bug of the caller, and panics.
func (s *ReaderSource) Release(n int) {
	if n < 0 || n > s.end-s.start {
		panic(fmt.Sprintf("plumbing: Release(%d) of %d peeked bytes", n, s.end-s.start))
	}
	s.start += n
	if s.start == s.end {
		s.start, s.end = 0, 0
	}
}

// Close ends the source: later Peeks fail with os.ErrClosed, and what was
// read ahead is dropped. It does not close the reader. Later calls do
// nothing.
func (s *ReaderSource) Close() error {
	s.start, s.end, s.err = 0, 0, os.ErrClosed
	return nil
}

// WriterSink is a Sink that writes any io.Writer through a buffer of its
// own: how a Go program takes a builtin's output into memory, a network
// connection or anything else that is not a file (a *os.File is written
// better through a FileSink, which the Stop can interrupt). The buffer is
// written out when a Reserve finds it too full, on Flush, and on Close. It
// is not safe for concurrent use.
//
// The sink does not own the writer: Close does not close it, as os/exec
// does not close a command's Stdout. The first write error is kept and
// returned by every later Reserve, Flush and Close. A writer that has
// lost its reader fails with syscall.EPIPE, the builtins' sign that
// downstream finished: a *os.File's pipe does, and an io.Pipe's
// io.ErrClosedPipe is returned wrapping syscall.EPIPE too.
type WriterSink struct {
	w      io.Writer
	buf    []byte
	n      int   // committed, not yet written
	err    error // the first write error, returned from then on
	stop   *Stop
	closed bool
}

// NewWriterSink writes to w through a buffer of StreamBufferSize bytes.
func NewWriterSink(w io.Writer) *WriterSink { return NewWriterSinkSize(w, StreamBufferSize) }

// NewWriterSinkSize writes to w through a buffer of size bytes (at least
// 16): MaxReserve is half of it.
func NewWriterSinkSize(w io.Writer, size int) *WriterSink {
	return &WriterSink{w: w, buf: make([]byte, max(size, minStreamBuffer))}
}

// MaxReserve is half the buffer.
func (s *WriterSink) MaxReserve() int { return len(s.buf) / 2 }

// SetStop makes Reserve fail with ErrStopped once st is closed (nil:
// never), and a broken pipe after it read as ErrStopped: the reader was
// torn down with this stage, it did not leave. A Write already waiting in
// the writer is not interrupted.
func (s *WriterSink) SetStop(st *Stop) { s.stop = st }

// Reserve returns the free space of the buffer once it has at least
// atLeast bytes (capped at MaxReserve, 0 meaning 1), writing out what is
// committed first if it has not. The slice is valid until the next
// Reserve, Flush or Close. It fails with the writer's error once a write
// failed, with os.ErrClosed after Close, and with ErrStopped once the Stop
// is closed.
func (s *WriterSink) Reserve(atLeast int) ([]byte, error) {
	if s.stop.Stopped() {
		return nil, ErrStopped
	}
	if s.err != nil {
		return nil, s.err
	}
	if s.closed {
		return nil, os.ErrClosed
	}
	want := min(max(atLeast, 1), s.MaxReserve())
	if len(s.buf)-s.n < want {
		if err := s.Flush(); err != nil {
			return nil, err
		}
	}
	return s.buf[s.n:], nil
}

// Commit publishes the first n bytes of the last reserved space; several
// Commits may share one Reserve, up to its length. Committing more than
// was reserved is a bug of the caller, and panics.
func (s *WriterSink) Commit(n int) {
	if n < 0 || n > len(s.buf)-s.n {
		panic(fmt.Sprintf("plumbing: Commit(%d) of %d reserved bytes", n, len(s.buf)-s.n))
	}
	s.n += n
}

// Flush writes what is committed to the writer. A writer that takes less
// than all of it without an error fails with io.ErrShortWrite, as in
// bufio.
func (s *WriterSink) Flush() error {
	if s.err == nil && s.n > 0 {
		s.err = s.write(s.buf[:s.n])
	}
	s.n = 0
	return s.err
}

// write writes p out whole, or returns why not.
func (s *WriterSink) write(p []byte) error {
	n, err := s.w.Write(p)
	switch {
	case n < 0 || n > len(p):
		err = fmt.Errorf("write: the writer took %d bytes of %d", n, len(p))
	case err == nil && n < len(p):
		err = io.ErrShortWrite
	case errors.Is(err, io.ErrClosedPipe) && !IsBrokenPipe(err):
		err = fmt.Errorf("%w (%w)", syscall.EPIPE, err)
	}
	if IsBrokenPipe(err) && s.stop.Stopped() {
		return ErrStopped
	}
	return err
}

// Close writes out what is committed and ends the sink; it does not close
// the writer. It returns the first write error, if any. Later calls do
// nothing.
func (s *WriterSink) Close() error {
	if s.closed {
		return nil
	}
	err := s.Flush()
	s.closed = true
	return err
}

// CloseAfter closes s, which a builtin wrote until it returned err, and
// returns err with Close's errors added, but those err holds already: a
// sink keeps its first write error and returns it again from Close, and
// a plain errors.Join would say it twice.
func CloseAfter(s Sink, err error) error {
	cerr := s.Close()
	if cerr == nil {
		return err
	}
	if err == nil {
		return cerr
	}
	errs := []error{cerr}
	if j, ok := cerr.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	all := []error{err}
	for _, e := range errs {
		if !errors.Is(err, e) {
			all = append(all, e)
		}
	}
	if len(all) == 1 {
		return err
	}
	return errors.Join(all...)
}

var (
	_ Source    = (*ReaderSource)(nil)
	_ Sink      = (*WriterSink)(nil)
	_ Stoppable = (*ReaderSource)(nil)
	_ Stoppable = (*WriterSink)(nil)
)
