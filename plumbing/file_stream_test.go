package plumbing

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitBlockedIn waits until a goroutine whose stack holds fn is blocked
// (in a system call, the poller, or on a channel): how a test knows that
// a wait began before it ends it.
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	waitUntil(t, "a goroutine blocked in "+fn, func() bool {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if strings.Contains(g, fn) && !strings.Contains(header, "[running") && !strings.Contains(header, "[runnable") {
				return true
			}
		}
		return false
	})
}

// hooks counts calls of OnWait, park and unpark.
type hooks struct{ waits, parks, unparks int }

func (h *hooks) onWait() { h.waits++ }
func (h *hooks) park()   { h.parks++ }
func (h *hooks) unpark() { h.unparks++ }

// tempFile returns a file holding data, open for reading, and a second
// descriptor that shares its offset.
func tempFile(t *testing.T, data string) (f, twin *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	twin = os.NewFile(uintptr(fd), path)
	t.Cleanup(func() { twin.Close() })
	return f, twin
}

// TestFileSourceGivesBackUnread: a FileSource on a regular file reads
// ahead, and its Close moves the shared offset back to just after the
// last byte released or read, as GNU head does, so that whoever shares
// the file reads on from there.
func TestFileSourceGivesBackUnread(t *testing.T) {
	f, twin := tempFile(t, "0123456789abcdef")
	s := NewFileSource(f)
	if got := s.MaxPeek(); got != StreamBufferSize/2 {
		t.Errorf("MaxPeek = %d, want %d", got, StreamBufferSize/2)
	}
	var h hooks
	s.OnWait(h.onWait)
	s.OnPark(h.park, h.unpark)
	if p, err := s.Peek(1); string(p) != "0123456789abcdef" || err != nil {
		t.Fatalf("Peek = %q, %v", p, err)
	}
	if h.waits != 1 || h.parks != 1 || h.unparks != 1 {
		t.Errorf("hooks after one read: %+v, want each once", h)
	}
	s.Release(4)
	p := make([]byte, 3)
	if n, err := s.Read(p); n != 3 || err != nil || string(p) != "456" {
		t.Errorf("Read from the buffer = %d %q, %v; want 456", n, p[:n], err)
	}
	if h.waits != 1 {
		t.Errorf("a Read from the buffer waited: %+v", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(twin)
	if err != nil || string(rest) != "789abcdef" {
		t.Errorf("the twin descriptor reads on with %q, %v; want 789abcdef", rest, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestFileSourceRead: Read goes straight to the file when nothing is
// buffered, keeps the end of the input, and heeds the Stop.
func TestFileSourceRead(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	w.Close()
	s := NewFileSource(r)
	defer s.Close()
	var h hooks
	s.OnWait(h.onWait)
	s.OnPark(h.park, h.unpark)
	stop := NewStop()
	defer stop.Release()
	s.SetStop(stop)
	s.WatchReads() // a blocking pipe: a poll of it and the stop before each read
	p := make([]byte, 10)
	if n, err := s.Read(p); n != 3 || err != nil || string(p[:n]) != "abc" {
		t.Errorf("Read = %q, %v; want abc", p[:n], err)
	}
	for range 2 {
		if n, err := s.Read(p); n != 0 || err != io.EOF {
			t.Errorf("Read at the end = %d, %v; want EOF", n, err)
		}
	}
	if h.waits != 2 || h.parks != 2 || h.unparks != 2 {
		t.Errorf("hooks after two reads of the pipe: %+v, want 2 each", h)
	}
	stop.Close()
	if n, err := s.Read(p); n != 0 || err != ErrStopped {
		t.Errorf("Read after the stop = %d, %v; want ErrStopped", n, err)
	}
}

// TestFileSourceReadStopped: a Read waiting in the poller ends with
// ErrStopped when the Stop closes.
func TestFileSourceReadStopped(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := NewFileSource(nonblockingFile(t, r))
	defer s.Close()
	stop := NewStop()
	defer stop.Release()
	s.SetStop(stop)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 10))
		errc <- err
	}()
	waitInPoller(t, "(*FileSource).Read")
	stop.Close()
	within(t, "Read after the stop", func() {
		if err := <-errc; err != ErrStopped {
			t.Errorf("Read = %v, want ErrStopped", err)
		}
	})
}

// nonblockingFile returns f's descriptor in non-blocking mode as a new
// File, which the runtime's poller then serves; f is closed.
func nonblockingFile(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "pipe")
}

// TestFileSourceWatchReads: a source that watches its reads waits in a
// poll of its file and its Stop: input ends the wait, and so does the
// Stop, even though the file is a blocking one.
func TestFileSourceWatchReads(t *testing.T) {
	for _, how := range []string{"input", "stop"} {
		t.Run(how, func(t *testing.T) {
			r, w, err := Pipe(-1)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			s := NewFileSource(r)
			defer s.Close()
			stop := NewStop()
			defer stop.Release()
			s.SetStop(stop)
			s.WatchReads()
			type result struct {
				p   string
				err error
			}
			res := make(chan result, 1)
			go func() {
				p, err := s.Peek(1)
				res <- result{string(p), err}
			}()
			waitBlockedIn(t, "(*Stop).waitReadable")
			want := result{"x", nil}
			if how == "input" {
				w.Write([]byte("x"))
			} else {
				stop.Close()
				want = result{"", ErrStopped}
			}
			within(t, "Peek", func() {
				if got := <-res; got != want {
					t.Errorf("Peek = %q, %v; want %q, %v", got.p, got.err, want.p, want.err)
				}
			})
		})
	}
}

// TestFileSourceStoppedWriterGone: input that ends while the Stop is
// closed (its writer was torn down with the stage) is no end of input.
func TestFileSourceStoppedWriterGone(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	s := NewFileSource(r)
	defer s.Close()
	stop := NewStop()
	defer stop.Release()
	s.SetStop(stop)
	w.Write([]byte("ab"))
	w.Close()
	s.OnWait(stop.Close) // the teardown comes as the source reads
	if p, err := s.Peek(3); p != nil || err != ErrStopped {
		t.Errorf("Peek = %q, %v; want ErrStopped", p, err)
	}
}

// TestFileSink: what is committed reaches the pipe on Flush, when a
// Reserve finds too little room, on a Write (before its own bytes), and on
// Close, which calls OnClose once.
func TestFileSink(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		got <- b
	}()
	s := NewFileSink(w)
	if s.MaxReserve() != StreamBufferSize/2 {
		t.Errorf("MaxReserve = %d, want %d", s.MaxReserve(), StreamBufferSize/2)
	}
	var h hooks
	s.OnPark(h.park, h.unpark)
	closes := 0
	s.OnClose(func() { closes++ })
	var want bytes.Buffer
	commit := func(text string) {
		t.Helper()
		buf, err := s.Reserve(len(text))
		if err != nil {
			t.Fatal(err)
		}
		s.Commit(copy(buf, text))
		want.WriteString(text)
	}
	commit("head ")
	if err := s.Flush(); err != nil || h.parks != 1 || h.unparks != 1 {
		t.Errorf("Flush: %v, hooks %+v; want one write", err, h)
	}
	if err := s.Flush(); err != nil || h.parks != 1 {
		t.Errorf("Flush with nothing committed: %v, hooks %+v; want no write", err, h)
	}
	big := strings.Repeat("b", StreamBufferSize-100)
	commit(big)
	commit(strings.Repeat("c", 200)) // too little room left: big goes first
	if h.parks != 2 {
		t.Errorf("hooks %+v after a Reserve that found too little room, want a second write", h)
	}
	commit("d")
	direct := bytes.Repeat([]byte("e"), StreamBufferSize/4)
	if err := Write(s, direct); err != nil { // large: straight to the pipe, after "d"
		t.Fatal(err)
	}
	want.Write(direct)
	commit("tail")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || closes != 1 {
		t.Errorf("second Close: %v, OnClose called %d times; want once", err, closes)
	}
	var b []byte
	within(t, "the reader", func() { b = <-got })
	if !bytes.Equal(b, want.Bytes()) {
		t.Errorf("the reader got %d bytes, want %d, not the same", len(b), want.Len())
	}
	// After Close nothing is written.
	if _, err := s.Write([]byte("x")); err != os.ErrClosed {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
	s2 := NewFileSink(nil)
	buf, _ := s2.Reserve(1)
	s2.Commit(copy(buf, "x"))
	if err := s2.Flush(); err != os.ErrClosed {
		t.Errorf("Flush of a sink with no file: %v, want os.ErrClosed", err)
	}
}

// TestFileSinkBrokenPipe: a sink whose reader has gone fails with EPIPE,
// from then on; once its Stop is closed, with ErrStopped.
func TestFileSinkBrokenPipe(t *testing.T) {
	for _, stopped := range []bool{false, true} {
		r, w, err := Pipe(-1)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		s := NewFileSink(w)
		stop := NewStop()
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
		if stopped {
			if err != ErrStopped {
				t.Errorf("Flush, stopped: %v, want ErrStopped", err)
			}
			if _, err := s.Reserve(1); err != ErrStopped {
				t.Errorf("Reserve, stopped: %v, want ErrStopped", err)
			}
			if _, err := s.Write([]byte("x")); err != ErrStopped {
				t.Errorf("Write, stopped: %v, want ErrStopped", err)
			}
		} else {
			if !IsBrokenPipe(err) {
				t.Errorf("Flush: %v, want EPIPE", err)
			}
			if _, err2 := s.Reserve(1); err2 != err {
				t.Errorf("Reserve after the failure: %v, want %v again", err2, err)
			}
			if _, err2 := s.Write(make([]byte, 10)); err2 != err {
				t.Errorf("Write after the failure: %v, want %v again", err2, err)
			}
		}
		s.Close()
		stop.Release()
	}
	// A direct write to a pipe whose reader has gone.
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	s := NewFileSink(w)
	defer s.Close()
	if _, err := s.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Write: %v, want EPIPE", err)
	}
	if _, err := s.Reserve(1); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Reserve after a failed Write: %v, want EPIPE", err)
	}
}

// TestSpliceAndPipeFDs: which ends offer their descriptor for splice(2)
// and tee(2), and when.
func TestSpliceAndPipeFDs(t *testing.T) {
	dir := t.TempDir()
	open := func(path string, flag int) *os.File {
		t.Helper()
		f, err := os.OpenFile(path, flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	pipe := func() (r, w *os.File) {
		t.Helper()
		r, w, err := Pipe(-1)
		if err != nil {
			t.Fatal(err)
		}
		return r, w
	}
	pr, pw := pipe()
	defer pr.Close()
	sinks := []struct {
		name         string
		f            *os.File
		splice, pipe bool
	}{
		{"regular file", open(filepath.Join(dir, "a"), os.O_WRONLY|os.O_CREATE), true, false},
		{"appended file", open(filepath.Join(dir, "b"), os.O_WRONLY|os.O_CREATE|os.O_APPEND), false, false},
		{"/dev/null", open(os.DevNull, os.O_WRONLY), true, false},
		{"/dev/full", open("/dev/full", os.O_WRONLY), false, false},
		{"pipe", pw, false, true},
	}
	for _, tt := range sinks {
		s := NewFileSink(tt.f)
		fd, ok := s.SpliceFD()
		if ok != tt.splice || (ok && fd != int(tt.f.Fd())) {
			t.Errorf("%s: SpliceFD = %d, %v; want %v", tt.name, fd, ok, tt.splice)
		}
		fd, ok = s.PipeFD()
		if ok != tt.pipe || (ok && fd != int(tt.f.Fd())) {
			t.Errorf("%s: sink PipeFD = %d, %v; want %v", tt.name, fd, ok, tt.pipe)
		}
		// Not while bytes are buffered: they must go first.
		buf, _ := s.Reserve(1)
		s.Commit(copy(buf, "x"))
		if _, ok := s.SpliceFD(); ok {
			t.Errorf("%s: SpliceFD with a byte buffered", tt.name)
		}
		if _, ok := s.PipeFD(); ok {
			t.Errorf("%s: PipeFD with a byte buffered", tt.name)
		}
		s.Close()
		if _, ok := s.SpliceFD(); ok {
			t.Errorf("%s: SpliceFD after Close", tt.name)
		}
	}
	// A source offers its pipe while nothing is read ahead.
	r, w := pipe()
	src := NewFileSource(r)
	defer src.Close()
	if fd, ok := src.PipeFD(); !ok || fd != int(r.Fd()) {
		t.Errorf("source PipeFD = %d, %v; want the pipe's", fd, ok)
	}
	w.Write([]byte("ab"))
	w.Close()
	src.Peek(1)
	if _, ok := src.PipeFD(); ok {
		t.Error("source PipeFD with bytes read ahead")
	}
	src.Release(2)
	src.Peek(1) // the end
	if _, ok := src.PipeFD(); ok {
		t.Error("source PipeFD at the end of its input")
	}
	f, _ := tempFile(t, "x")
	fsrc := NewFileSource(f)
	defer fsrc.Close()
	if _, ok := fsrc.PipeFD(); ok {
		t.Error("source PipeFD of a regular file")
	}
	if _, ok := pipeFD(nil); ok {
		t.Error("pipeFD(nil) reports a pipe")
	}
}

// TestWaitInput: a source used through its pipe waits for input, for the
// end of it, or for the Stop.
func TestWaitInput(t *testing.T) {
	for _, how := range []string{"data", "writer gone", "stopped before", "stopped while waiting", "no stop"} {
		t.Run(how, func(t *testing.T) {
			r, w, err := Pipe(-1)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			s := NewFileSource(r)
			defer s.Close()
			stop := NewStop()
			defer stop.Release()
			if how != "no stop" {
				s.SetStop(stop)
			}
			fd, ok := s.PipeFD()
			if !ok {
				t.Fatal("no pipe")
			}
			var want error
			switch how {
			case "data", "no stop":
				w.Write([]byte("x"))
			case "writer gone":
				w.Close()
			case "stopped before":
				stop.Close()
				want = ErrStopped
			case "stopped while waiting":
				want = ErrStopped
			}
			errc := make(chan error, 1)
			go func() { errc <- s.WaitInput(fd) }()
			if how == "stopped while waiting" {
				waitBlockedIn(t, "(*FileSource).WaitInput")
				stop.Close()
			}
			within(t, "WaitInput", func() {
				if err := <-errc; err != want {
					t.Errorf("WaitInput = %v, want %v", err, want)
				}
			})
		})
	}
}

// fillPipe writes to w until the pipe is full.
func fillPipe(t *testing.T, w *os.File) {
	t.Helper()
	fd := int(w.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := unix.Write(fd, buf); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
}

// TestWaitWritable: a source used through its pipe waits for room in
// output pipes, up to a timeout, or for its Stop.
func TestWaitWritable(t *testing.T) {
	for _, how := range []string{"room", "full", "no pipes", "stopped before", "stopped while waiting", "room made"} {
		t.Run(how, func(t *testing.T) {
			r, w, err := Pipe(-1)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			s := NewFileSource(r)
			defer s.Close()
			stop := NewStop()
			defer stop.Release()
			s.SetStop(stop)
			or, ow, err := Pipe(-1)
			if err != nil {
				t.Fatal(err)
			}
			defer or.Close()
			defer ow.Close()
			fds := []int{int(ow.Fd())}
			timeout := time.Duration(0)
			wantRoom, wantErr := false, error(nil)
			switch how {
			case "room":
				wantRoom = true
			case "full":
				fillPipe(t, ow)
			case "no pipes":
				fds = nil
			case "stopped before":
				stop.Close()
				wantErr = ErrStopped
			case "stopped while waiting":
				fillPipe(t, ow)
				timeout, wantErr = 2*stepDeadline, ErrStopped
			case "room made":
				fillPipe(t, ow)
				timeout, wantRoom = 2*stepDeadline, true
			}
			type result struct {
				room bool
				err  error
			}
			res := make(chan result, 1)
			go func() {
				room, err := s.WaitWritable(fds, timeout)
				res <- result{room, err}
			}()
			switch how {
			case "stopped while waiting":
				waitBlockedIn(t, "(*FileSource).WaitWritable")
				stop.Close()
			case "room made":
				waitBlockedIn(t, "(*FileSource).WaitWritable")
				if _, err := io.ReadFull(or, make([]byte, 64<<10)); err != nil {
					t.Fatal(err)
				}
			}
			within(t, "WaitWritable", func() {
				if got := <-res; got != (result{wantRoom, wantErr}) {
					t.Errorf("WaitWritable = %v, %v; want %v, %v", got.room, got.err, wantRoom, wantErr)
				}
			})
		})
	}
}

// TestStopDescriptor: the eventfd behind a Stop is readable once it is
// closed, made on first use (signalled at once if the Stop closed
// before), and gone after Release.
func TestStopDescriptor(t *testing.T) {
	readable := func(fd int) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n == 1
	}
	var nilStop *Stop
	if nilStop.fd() != -1 || nilStop.Stopped() || nilStop.channel() != nil {
		t.Error("a nil Stop has a descriptor, or stopped, or a channel")
	}
	if err := nilStop.waitReadable(0); err != nil {
		t.Errorf("waitReadable of a nil Stop: %v, want nil at once", err)
	}
	s := NewStop()
	fd := s.fd()
	if fd < 0 || readable(fd) {
		t.Fatalf("fd = %d, readable %v; want a descriptor not yet readable", fd, readable(fd))
	}
	if s.fd() != fd {
		t.Error("a second fd() made another descriptor")
	}
	s.Close()
	s.Close()
	if !readable(fd) {
		t.Error("not readable after Close")
	}
	select {
	case <-s.channel():
	default:
		t.Error("the channel is open after Close")
	}
	if err := s.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
	if s.fd() != -1 {
		t.Error("fd() after Release made a descriptor")
	}
	if err := s.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	closedFirst := NewStop()
	closedFirst.Close()
	if fd := closedFirst.fd(); fd < 0 || !readable(fd) {
		t.Errorf("fd of a Stop closed before = %d, readable %v; want readable", fd, readable(fd))
	}
	closedFirst.Release()
	never := NewStop()
	if err := never.Release(); err != nil {
		t.Errorf("Release with no descriptor made: %v", err)
	}
}

// TestStopWatch: a file in the poller that a Stop watches fails its waits
// once the Stop closes, even if it is watched only after; a file that is
// not in the poller is not watched.
func TestStopWatch(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	blocking := r
	defer blocking.Close()
	r2, w2, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	polled := nonblockingFile(t, r2)
	defer polled.Close()
	s := NewStop()
	defer s.Release()
	if s.watch(blocking) {
		t.Error("a blocking file is watched")
	}
	if s.watch(nil) {
		t.Error("a nil file is watched")
	}
	var nilStop *Stop
	if nilStop.watch(polled) {
		t.Error("a nil Stop watches")
	}
	s.Close()
	if !s.watch(polled) {
		t.Fatal("a file in the poller is not watched")
	}
	within(t, "a read after the stop", func() {
		if _, err := polled.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read of a file watched after the stop: %v, want a deadline error", err)
		}
	})
}

// TestFlushBeforeWaitFileSource: a FileSource flushes the sink before each
// read of its file.
func TestFlushBeforeWaitFileSource(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	or, ow, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer or.Close()
	in, out := NewFileSource(r), NewFileSink(ow)
	defer in.Close()
	defer out.Close()
	FlushBeforeWait(in, out)
	w.Write([]byte("a"))
	p, err := in.Peek(1)
	if string(p) != "a" || err != nil {
		t.Fatalf("Peek = %q, %v", p, err)
	}
	if err := Write(out, p); err != nil {
		t.Fatal(err)
	}
	in.Release(1)
	w.Close()
	if p, err := in.Peek(1); len(p) != 0 || err != io.EOF { // flushes "a" first
		t.Fatalf("Peek = %q, %v; want EOF", p, err)
	}
	got := make([]byte, 1)
	within(t, "the flushed byte", func() {
		if _, err := io.ReadFull(or, got); err != nil || string(got) != "a" {
			t.Errorf("read %q, %v; want a, flushed before the wait", got, err)
		}
	})
	NoFlushBeforeWait(in)
	if in.onWait != nil {
		t.Error("NoFlushBeforeWait left the hook")
	}
}

// TestRingHooks: a ring's sides call OnWait and the park hooks around
// each sleep, and report their sizes.
func TestRingHooks(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		defer rd.Close()
		if w.Size() != 4096 || rd.Size() != 4096 || w.MaxReserve() != 2048 || rd.MaxPeek() != 2048 {
			t.Errorf("sizes %d, %d, max %d, %d; want 4096 and 2048", w.Size(), rd.Size(), w.MaxReserve(), rd.MaxPeek())
		}
		var rh, wh hooks
		rd.OnWait(rh.onWait)
		rd.OnPark(rh.park, rh.unpark)
		w.OnPark(wh.park, wh.unpark)
		got := make(chan string, 1)
		go func() {
			p, _ := rd.Peek(1)
			got <- string(p)
		}()
		waitUntil(t, "the reader asleep", func() bool { return rd.r.readerWaiting.Load() != 0 })
		w.Write([]byte("x"))
		w.Flush()
		within(t, "the reader", func() {
			if p := <-got; p != "x" {
				t.Errorf("Peek = %q, want x", p)
			}
		})
		if rh.waits < 1 || rh.parks < 1 || rh.parks != rh.unparks {
			t.Errorf("reader hooks %+v, want a wait and as many parks as unparks", rh)
		}
		rd.Release(1)
		// Fill the ring: the writer sleeps until the reader makes room.
		if _, err := w.Write(make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := w.Write([]byte("y"))
			w.Flush() // a byte is less than a step: the reader waits for more, or this
			done <- err
		}()
		waitUntil(t, "the writer asleep", func() bool { return w.r.writerWaiting.Load() != 0 })
		within(t, "the drain", func() {
			for n := 0; n < 4097; {
				p, err := rd.Peek(1)
				if err != nil {
					t.Errorf("Peek: %v", err)
					return
				}
				rd.Release(len(p))
				n += len(p)
			}
			if err := <-done; err != nil {
				t.Errorf("Write: %v", err)
			}
		})
		if wh.parks < 1 || wh.parks != wh.unparks {
			t.Errorf("writer hooks %+v, want as many parks as unparks, at least one", wh)
		}
	})
}

// TestShmRingAbandon: a shm writer abandoned (its builtin panicked) leaves
// the reader its committed bytes, then ErrWriterDied.
func TestShmRingAbandon(t *testing.T) {
	w, rd := openRing(t, "shm", 4096)
	defer rd.Close()
	w.Write([]byte("kept"))
	buf, _ := w.Reserve(4)
	copy(buf, "lost")
	w.Abandon()
	w.Abandon()
	w.Close()
	var got []byte
	within(t, "the reader after the abandon", func() {
		for {
			p, err := rd.Peek(5)
			if err != nil {
				got = append(got, p...)
				if err != ErrWriterDied {
					t.Errorf("Peek: %v, want ErrWriterDied", err)
				}
				return
			}
		}
	})
	if string(got) != "kept" {
		t.Errorf("the reader got %q, want kept", got)
	}
}
