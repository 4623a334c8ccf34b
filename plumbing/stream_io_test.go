package plumbing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
)

// drain reads a source to its end with Peeks of atLeast, and returns what
// it read and the error that ended it.
func drain(s Source, atLeast int) ([]byte, error) {
	var got []byte
	for {
		p, err := s.Peek(atLeast)
		got = append(got, p...)
		s.Release(len(p))
		if err != nil {
			return got, err
		}
	}
}

// funcReader is an io.Reader made of a function.
type funcReader func(p []byte) (int, error)

func (f funcReader) Read(p []byte) (int, error) { return f(p) }

// funcWriter is an io.Writer made of a function.
type funcWriter func(p []byte) (int, error)

func (f funcWriter) Write(p []byte) (int, error) { return f(p) }

// script is a reader that returns its steps in turn: each a string of
// bytes (cut to the buffer it is given) and an error.
func script(steps ...any) io.Reader {
	return funcReader(func(p []byte) (int, error) {
		if len(steps) == 0 {
			return 0, io.EOF
		}
		data, err := steps[0].(string), error(nil)
		if len(steps) > 1 {
			if e, ok := steps[1].(error); ok {
				err = e
				steps = steps[1:]
			}
		}
		steps = steps[1:]
		n := copy(p, data)
		if n < len(data) {
			panic("script: a step longer than the buffer")
		}
		return n, err
	})
}

func TestReaderSourceReadsEverything(t *testing.T) {
	data := strings.Repeat("0123456789abcdef\n", 300) // 5100 bytes, over many buffers
	readers := map[string]func() io.Reader{
		"whole":     func() io.Reader { return strings.NewReader(data) },
		"one byte":  func() io.Reader { return iotest.OneByteReader(strings.NewReader(data)) },
		"half":      func() io.Reader { return iotest.HalfReader(strings.NewReader(data)) },
		"data+EOF":  func() io.Reader { return iotest.DataErrReader(strings.NewReader(data)) },
		"empty too": func() io.Reader { return &emptyReads{r: iotest.OneByteReader(strings.NewReader(data))} },
	}
	for name, r := range readers {
		for _, size := range []int{1, 64, 1000, StreamBufferSize} {
			for _, atLeast := range []int{0, 1, 7, 32, 1 << 30} {
				t.Run(fmt.Sprintf("%s/buffer %d/peek %d", name, size, atLeast), func(t *testing.T) {
					s := NewReaderSourceSize(r(), size)
					got, err := drain(s, atLeast)
					if err != io.EOF || string(got) != data {
						t.Errorf("read %d bytes (equal: %v), %v; want %d bytes, EOF", len(got), string(got) == data, err, len(data))
					}
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
		}
	}
}

// emptyReads returns nothing, and no error, before every read of r.
type emptyReads struct {
	r    io.Reader
	next bool
}

func (e *emptyReads) Read(p []byte) (int, error) {
	if e.next = !e.next; e.next {
		return 0, nil
	}
	return e.r.Read(p)
}

func TestReaderSourcePeekWaitsForAtLeast(t *testing.T) {
	s := NewReaderSourceSize(script("ab", "c", "defg", "hij"), 16)
	if got := s.MaxPeek(); got != 8 {
		t.Fatalf("MaxPeek = %d, want 8", got)
	}
	steps := []struct {
		atLeast, release int
		want             string
		err              error
	}{
		{1, 0, "ab", nil},           // one read is enough
		{3, 1, "abc", nil},          // a second read
		{4, 2, "bcdefg", nil},       // a third
		{1, 0, "defg", nil},         // enough there: no read
		{100, 4, "defghij", io.EOF}, // capped at MaxPeek: the end comes first
		{1, 0, "hij", nil},          // enough there, as with a FileSource
		{4, 0, "hij", io.EOF},       // the end again, with what is left
		{1, 3, "hij", nil},
		{1, 0, "", io.EOF}, // nothing left
	}
	for i, st := range steps {
		got, err := s.Peek(st.atLeast)
		if string(got) != st.want || err != st.err {
			t.Fatalf("step %d: Peek(%d) = %q, %v; want %q, %v", i+1, st.atLeast, got, err, st.want, st.err)
		}
		s.Release(st.release)
	}
}

// TestReaderSourceMovesUnreadBytes: a peek that needs more room than is
// left after the unread bytes moves them to the front of the buffer.
func TestReaderSourceMovesUnreadBytes(t *testing.T) {
	s := NewReaderSourceSize(script("0123456789abcd", "efgh"), 16)
	if p, err := s.Peek(1); string(p) != "0123456789abcd" || err != nil {
		t.Fatalf("Peek = %q, %v", p, err)
	}
	s.Release(10)
	if p, err := s.Peek(8); string(p) != "abcdefgh" || err != nil {
		t.Fatalf("Peek(8) after moving = %q, %v; want abcdefgh", p, err)
	}
}

func TestReaderSourceErrors(t *testing.T) {
	broken := errors.New("disk on fire")
	tests := []struct {
		name    string
		r       io.Reader
		atLeast int
		want    string
		err     error
	}{
		{"error after data", script("abc", "de", broken), 1, "abcde", broken},
		{"error with data", script("abc", "de", broken, "never"), 100, "abcde", broken},
		{"error at once", script("", broken), 1, "", broken},
		{"timeout", iotest.TimeoutReader(strings.NewReader("xyz")), 1, "xyz", iotest.ErrTimeout},
		{"EOF with data", script("abc", "de", io.EOF), 1, "abcde", io.EOF},
		{"unexpected EOF", script("abc", io.ErrUnexpectedEOF), 2, "abc", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewReaderSourceSize(tt.r, 64)
			got, err := drain(s, tt.atLeast)
			if string(got) != tt.want || err != tt.err {
				t.Errorf("read %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
			// The error stays.
			if p, err := s.Peek(1); len(p) != 0 || err != tt.err {
				t.Errorf("Peek after the error: %q, %v; want %v", p, err, tt.err)
			}
		})
	}
}

func TestReaderSourceNoProgress(t *testing.T) {
	reads := 0
	s := NewReaderSource(funcReader(func(p []byte) (int, error) { reads++; return 0, nil }))
	if p, err := s.Peek(1); len(p) != 0 || err != io.ErrNoProgress {
		t.Errorf("Peek of a reader that returns nothing: %q, %v; want io.ErrNoProgress", p, err)
	}
	if reads != maxEmptyReads {
		t.Errorf("%d reads, want %d", reads, maxEmptyReads)
	}
}

func TestReaderSourceBadCount(t *testing.T) {
	for _, n := range []int{-1, 17} {
		s := NewReaderSourceSize(funcReader(func(p []byte) (int, error) { return n, nil }), 16)
		want := fmt.Sprintf("read: the reader returned %d bytes for a buffer of 16", n)
		if p, err := s.Peek(1); len(p) != 0 || err == nil || err.Error() != want {
			t.Errorf("reader returning %d: %q, %v; want %q", n, p, err, want)
		}
	}
}

func TestReaderSourceReleaseTooMuchPanics(t *testing.T) {
	s := NewReaderSource(strings.NewReader("abc"))
	if _, err := s.Peek(1); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "plumbing: Release(4) of 3 peeked bytes" {
			t.Errorf("recovered %v, want a panic naming the counts", r)
		}
	}()
	s.Release(4)
}

// closeRecorder is a reader that says whether it was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestReaderSourceClose(t *testing.T) {
	r := &closeRecorder{Reader: strings.NewReader("abcdef")}
	s := NewReaderSource(r)
	if p, err := s.Peek(1); string(p) != "abcdef" || err != nil {
		t.Fatalf("Peek = %q, %v", p, err)
	}
	s.Release(2)
	for range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if p, err := s.Peek(1); len(p) != 0 || err != os.ErrClosed {
		t.Errorf("Peek after Close: %q, %v; want os.ErrClosed", p, err)
	}
	if r.closed {
		t.Error("Close closed the reader, which the source does not own")
	}
}

func TestReaderSourceStop(t *testing.T) {
	t.Run("before a peek", func(t *testing.T) {
		s := NewReaderSource(strings.NewReader("abc"))
		stop := NewStop()
		defer stop.Release()
		s.SetStop(stop)
		if p, err := s.Peek(1); string(p) != "abc" || err != nil {
			t.Fatalf("Peek before the stop = %q, %v", p, err)
		}
		stop.Close()
		if p, err := s.Peek(1); p != nil || err != ErrStopped {
			t.Errorf("Peek after the stop = %q, %v; want ErrStopped", p, err)
		}
	})
	t.Run("during a read", func(t *testing.T) {
		// The read the stop happened in fails, as a reader torn down
		// with this stage would: that is no end of the input.
		stop := NewStop()
		defer stop.Release()
		s := NewReaderSource(funcReader(func([]byte) (int, error) { stop.Close(); return 0, io.ErrClosedPipe }))
		s.SetStop(stop)
		if p, err := s.Peek(1); p != nil || err != ErrStopped {
			t.Errorf("Peek = %q, %v; want ErrStopped", p, err)
		}
	})
	t.Run("nil", func(t *testing.T) {
		s := NewReaderSource(strings.NewReader("abc"))
		s.SetStop(nil)
		if got, err := drain(s, 1); string(got) != "abc" || err != io.EOF {
			t.Errorf("with a nil Stop: %q, %v", got, err)
		}
	})
}

// TestFlushBeforeWaitReaderSource: a builtin whose input is a
// ReaderSource passes what it committed on before each read of its
// reader, which may wait: a trickle is never held back.
func TestFlushBeforeWaitReaderSource(t *testing.T) {
	var out bytes.Buffer
	sink := NewWriterSink(&out)
	var seen []string // what the writer had at each read
	chunks := []string{"a\n", "b\n", "c\n"}
	src := NewReaderSource(funcReader(func(p []byte) (int, error) {
		seen = append(seen, out.String())
		if len(chunks) == 0 {
			return 0, io.EOF
		}
		n := copy(p, chunks[0])
		chunks = chunks[1:]
		return n, nil
	}))
	FlushBeforeWait(src, sink)
	for {
		p, err := src.Peek(1)
		if werr := Write(sink, p); werr != nil {
			t.Fatal(werr)
		}
		src.Release(len(p))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(seen, "|"); got != "|a\n|a\nb\n|a\nb\nc\n" {
		t.Errorf("output at each read: %q, want every line passed on before the next read", got)
	}
	NoFlushBeforeWait(src)
	if src.onWait != nil {
		t.Error("NoFlushBeforeWait left the hook")
	}
}

func TestWriterSinkWritesEverything(t *testing.T) {
	data := []byte(strings.Repeat("0123456789abcdef\n", 300))
	for _, size := range []int{1, 64, 1000, StreamBufferSize} {
		for _, piece := range []int{1, 7, 100, len(data)} {
			t.Run(fmt.Sprintf("buffer %d/pieces of %d", size, piece), func(t *testing.T) {
				var out bytes.Buffer
				s := NewWriterSinkSize(&out, size)
				for p := data; len(p) > 0; {
					n := min(piece, len(p))
					if err := Write(s, p[:n]); err != nil {
						t.Fatal(err)
					}
					p = p[n:]
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), data) {
					t.Errorf("wrote %d bytes (equal: false), want %d", out.Len(), len(data))
				}
			})
		}
	}
}

// TestWriterSinkReserve: Reserve gives at least what is asked (capped at
// MaxReserve), writing out what is committed only when the space left is
// too small; Flush writes what is committed at once.
func TestWriterSinkReserve(t *testing.T) {
	var out bytes.Buffer
	s := NewWriterSinkSize(&out, 16)
	if got := s.MaxReserve(); got != 8 {
		t.Fatalf("MaxReserve = %d, want 8", got)
	}
	steps := []struct {
		atLeast int
		fill    string // committed in two Commits
		free    int    // the length of the reserved space
		written string // what the writer holds after the Reserve
	}{
		{0, "abcdef", 16, ""},
		{8, "ghijk", 10, ""},
		{8, "lmnop", 16, "abcdefghijk"}, // 5 left: written out first
		{1, "q", 11, "abcdefghijk"},
		{100, "", 10, "abcdefghijk"}, // capped at 8: the 10 left do
	}
	for i, st := range steps {
		buf, err := s.Reserve(st.atLeast)
		if err != nil || len(buf) != st.free || out.String() != st.written {
			t.Fatalf("step %d: Reserve(%d) = %d bytes, %v, writer holds %q; want %d bytes, writer %q",
				i+1, st.atLeast, len(buf), err, out.String(), st.free, st.written)
		}
		half := len(st.fill) / 2
		copy(buf, st.fill)
		s.Commit(half)
		s.Commit(len(st.fill) - half)
	}
	if err := s.Flush(); err != nil || out.String() != "abcdefghijklmnopq" {
		t.Errorf("Flush: writer holds %q, %v; want all of it", out.String(), err)
	}
	out.Reset()
	if err := s.Flush(); err != nil || out.String() != "" {
		t.Errorf("Flush with nothing committed: %q, %v", out.String(), err)
	}
}

func TestWriterSinkCommitTooMuchPanics(t *testing.T) {
	s := NewWriterSinkSize(io.Discard, 16)
	if _, err := s.Reserve(1); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "plumbing: Commit(17) of 16 reserved bytes" {
			t.Errorf("recovered %v, want a panic naming the counts", r)
		}
	}()
	s.Commit(17)
}

// TestWriterSinkErrors: the writer's first error comes back from the
// Flush or Reserve that wrote, and from every Reserve, Flush and Close
// after it; nothing more is written.
func TestWriterSinkErrors(t *testing.T) {
	broken := errors.New("disk on fire")
	tests := []struct {
		name   string
		w      func(writes *int) io.Writer
		want   string
		isPipe bool
	}{
		{"error", func(writes *int) io.Writer {
			return funcWriter(func(p []byte) (int, error) { *writes++; return 3, broken })
		}, "disk on fire", false},
		{"short write", func(writes *int) io.Writer {
			return funcWriter(func(p []byte) (int, error) { *writes++; return len(p) - 1, nil })
		}, "short write", false},
		{"nothing written", func(writes *int) io.Writer {
			return funcWriter(func(p []byte) (int, error) { *writes++; return 0, nil })
		}, "short write", false},
		{"bad count", func(writes *int) io.Writer {
			return funcWriter(func(p []byte) (int, error) { *writes++; return len(p) + 1, nil })
		}, "write: the writer took 11 bytes of 10", false},
		{"closed io.Pipe", func(writes *int) io.Writer {
			r, w := io.Pipe()
			r.Close()
			return funcWriter(func(p []byte) (int, error) { *writes++; return w.Write(p) })
		}, "broken pipe (io: read/write on closed pipe)", true},
		{"io.Pipe closed with EPIPE", func(writes *int) io.Writer {
			r, w := io.Pipe()
			r.CloseWithError(syscall.EPIPE)
			return funcWriter(func(p []byte) (int, error) { *writes++; return w.Write(p) })
		}, "broken pipe", true},
	}
	for _, tt := range tests {
		for _, how := range []string{"Flush", "Reserve", "Close"} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				writes := 0
				s := NewWriterSinkSize(tt.w(&writes), 16)
				buf, err := s.Reserve(1)
				if err != nil {
					t.Fatal(err)
				}
				s.Commit(copy(buf, "abcdefghij"))
				switch how {
				case "Flush":
					err = s.Flush()
				case "Reserve":
					_, err = s.Reserve(8) // 6 free: the 10 committed go out first
				case "Close":
					err = s.Close()
				}
				if err == nil || err.Error() != tt.want || IsBrokenPipe(err) != tt.isPipe {
					t.Fatalf("%s: %v (broken pipe: %v); want %q (broken pipe: %v)", how, err, IsBrokenPipe(err), tt.want, tt.isPipe)
				}
				first := err
				if _, err := s.Reserve(1); err != first {
					t.Errorf("Reserve after the error: %v, want %v", err, first)
				}
				if err := s.Flush(); err != first {
					t.Errorf("Flush after the error: %v, want %v", err, first)
				}
				if how != "Close" {
					if err := s.Close(); err != first {
						t.Errorf("Close after the error: %v, want %v", err, first)
					}
				}
				if writes != 1 {
					t.Errorf("%d writes, want 1: nothing after the error", writes)
				}
			})
		}
	}
}

// TestWriterSinkBrokenPipe: a WriterSink on a pipe whose reader has gone
// fails with EPIPE, as a FileSink does, and with ErrStopped once its Stop
// is closed (the reader was torn down with the stage).
func TestWriterSinkBrokenPipe(t *testing.T) {
	for _, stopped := range []bool{false, true} {
		r, w, err := Pipe(-1)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		stop := NewStop()
		s := NewWriterSink(w)
		s.SetStop(stop)
		buf, err := s.Reserve(1)
		if err != nil {
			t.Fatal(err)
		}
		s.Commit(copy(buf, "x"))
		if stopped {
			stop.Close()
		}
		err = s.Flush()
		switch {
		case stopped && err != ErrStopped:
			t.Errorf("Flush after the stop, reader gone: %v, want ErrStopped", err)
		case !stopped && (!errors.Is(err, syscall.EPIPE) || !IsBrokenPipe(err)):
			t.Errorf("Flush, reader gone: %v, want EPIPE", err)
		}
		w.Close()
		stop.Release()
	}
}

func TestWriterSinkStop(t *testing.T) {
	var out bytes.Buffer
	s := NewWriterSink(&out)
	stop := NewStop()
	defer stop.Release()
	s.SetStop(stop)
	if err := Write(s, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	stop.Close()
	if buf, err := s.Reserve(1); buf != nil || err != ErrStopped {
		t.Errorf("Reserve after the stop: %d bytes, %v; want ErrStopped", len(buf), err)
	}
	// What was committed is still handed on: the stop ends waits, it
	// does not lose data.
	if err := s.Close(); err != nil || out.String() != "abc" {
		t.Errorf("Close: %v, writer holds %q; want abc", err, out.String())
	}
}

// writeCloser is a writer that says whether it was closed.
type writeCloser struct {
	bytes.Buffer
	closed bool
}

func (w *writeCloser) Close() error { w.closed = true; return nil }

func TestWriterSinkClose(t *testing.T) {
	w := &writeCloser{}
	s := NewWriterSink(w)
	if err := Write(s, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 0 {
		t.Errorf("written before Flush or Close: %q", w.String())
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if w.String() != "abc" || w.closed {
		t.Errorf("after Close the writer holds %q, closed %v; want abc, not closed", w.String(), w.closed)
	}
	if buf, err := s.Reserve(1); buf != nil || err != os.ErrClosed {
		t.Errorf("Reserve after Close: %d bytes, %v; want os.ErrClosed", len(buf), err)
	}
	if err := s.Flush(); err != nil {
		t.Errorf("Flush after Close, nothing committed: %v", err)
	}
}

var errFire = errors.New("on fire")

// TestCloseAfter: Close's errors are added to the run's, but those the
// run's error holds already.
func TestCloseAfter(t *testing.T) {
	other := errors.New("close failed")
	tests := []struct {
		name    string
		runErr  error
		sinkErr error // the sink's write error, which Close returns
		want    string
	}{
		{"none", nil, nil, ""},
		{"the run's", errFire, nil, "on fire"},
		{"Close's", nil, other, "close failed"},
		{"both", errFire, other, "on fire\nclose failed"},
		{"the same", errFire, errFire, "on fire"},
		{"wrapped by the run", fmt.Errorf("out: %w", errFire), errFire, "out: on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w io.Writer = io.Discard
			if tt.sinkErr != nil {
				w = funcWriter(func([]byte) (int, error) { return 0, tt.sinkErr })
			}
			s := NewWriterSink(w)
			if err := Write(s, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if got := errString(CloseAfter(s, tt.runErr)); got != tt.want {
				t.Errorf("CloseAfter = %q, want %q", got, tt.want)
			}
		})
	}
	// A Close that fails twice over keeps both, but the run's.
	s := &joinCloser{Sink: NewWriterSink(io.Discard), err: errors.Join(errFire, other)}
	if got := errString(CloseAfter(s, errFire)); got != "on fire\nclose failed" {
		t.Errorf("CloseAfter of a joined error = %q", got)
	}
}

// joinCloser is a Sink whose Close fails with err.
type joinCloser struct {
	Sink
	err error
}

func (j *joinCloser) Close() error { return j.err }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
