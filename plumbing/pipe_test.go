package plumbing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

func TestPipeIsCloseOnExecAndEnlarged(t *testing.T) {
	r, w, err := Pipe(DefaultPipeSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, f := range []interface{ Fd() uintptr }{r, w} {
		flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d: flags %#x, %v; want FD_CLOEXEC", f.Fd(), flags, err)
		}
	}
	size, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel may refuse (pipe-max-size, per-user limits): then the
	// default 64 KiB stays, and the pipe must still work.
	if size != DefaultPipeSize && size != 64<<10 {
		t.Errorf("pipe size %d, want %d or the 64 KiB default", size, DefaultPipeSize)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "hello" {
		t.Errorf("read %q, %v; want hello", got, err)
	}
}

func TestPipeSizeRefusedQuietly(t *testing.T) {
	// Far over pipe-max-size: the kernel refuses, the pipe keeps its default.
	r, w, err := Pipe(1 << 40)
	if err != nil {
		t.Fatalf("Pipe with an oversized request: %v", err)
	}
	r.Close()
	w.Close()
}

func TestPlanEndsAndRelease(t *testing.T) {
	g := &parser.Graph{
		Stages: []*parser.Stage{{ID: 0}, {ID: 1}, {ID: 2}},
		Edges: []*parser.Edge{
			{From: parser.Port{Stage: 0, FD: 1}, To: parser.Port{Stage: 1, FD: 0}},
			{From: parser.Port{Stage: 1, FD: 1}, To: parser.Port{Stage: 2, FD: 0}},
		},
	}
	p, err := New(g, make([]StageInfo, 3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Choices; len(got) != 2 || got[0].Transport != parser.TransportPipe || got[1].Transport != parser.TransportPipe {
		t.Errorf("Choices = %v, want two pipes", got)
	}
	fds := func(i int) []int {
		var out []int
		for _, e := range p.Ends(i) {
			out = append(out, e.FD)
		}
		return out
	}
	if got := fds(1); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("stage 2 ends = %v, want [0 1]", got)
	}
	w := p.Ends(0)[0].File
	r := p.Ends(1)[0].File
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(0); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "x" {
		t.Errorf("after releasing the writer, read %q, %v; want x then EOF", got, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestChoose(t *testing.T) {
	g := &parser.Graph{
		Stages: []*parser.Stage{{ID: 0}, {ID: 1}, {ID: 2}},
		Edges: []*parser.Edge{
			{From: parser.Port{Stage: 0, FD: 1}, To: parser.Port{Stage: 1, FD: 0}},
			{From: parser.Port{Stage: 1, FD: 1}, To: parser.Port{Stage: 2, FD: 0}},
		},
	}
	gen, sink := StageInfo{Name: "gen", Rings: true, InProcess: true}, StageInfo{Name: "sink", Rings: true, InProcess: true}
	grep := StageInfo{Name: "grep", Why: "is an external program"}
	filter := StageInfo{Name: "filter", Rings: true, InProcess: true}
	isoFilter := StageInfo{Name: "filter", Rings: true}
	tests := []struct {
		stages   []StageInfo
		override parser.Transport
		want     string
	}{
		{[]StageInfo{gen, grep, sink}, parser.TransportAuto, "[{pipe grep is an external program} {pipe grep is an external program}]"},
		{[]StageInfo{gen, filter, sink}, parser.TransportAuto, "[{mem builtin → builtin in one process} {mem builtin → builtin in one process}]"},
		{[]StageInfo{gen, isoFilter, sink}, parser.TransportAuto, "[{shm builtin → builtin in separate processes} {shm builtin → builtin in separate processes}]"},
		{[]StageInfo{gen, filter, sink}, parser.TransportShm, "[{shm asked for} {shm asked for}]"},
		{[]StageInfo{gen, isoFilter, sink}, parser.TransportMem, "edge 1 (gen → filter): transport mem needs builtins inside gpipe at both ends, and filter runs in a process of its own"},
		{[]StageInfo{gen, grep, sink}, parser.TransportMem, "edge 1 (gen → grep): transport mem needs builtins inside gpipe at both ends, and grep is an external program"},
		{[]StageInfo{gen, filter, sink}, parser.TransportPipe, "[{pipe asked for} {pipe asked for}]"},
		{[]StageInfo{gen, grep, sink}, parser.TransportFIFO, "[{fifo asked for} {fifo asked for}]"},
		{[]StageInfo{gen, grep, sink}, parser.TransportShm, "edge 1 (gen → grep): transport shm needs builtins at both ends, and grep is an external program"},
	}
	for _, tt := range tests {
		got, err := Choose(g, tt.stages, tt.override)
		s := fmt.Sprint(got)
		if err != nil {
			s = err.Error()
		}
		if s != tt.want {
			t.Errorf("Choose(%v, %v) = %s, want %s", tt.stages, tt.override, s, tt.want)
		}
	}
}

// TestPlanTransports moves bytes across each kind of edge the plan makes.
func TestPlanTransports(t *testing.T) {
	// A private temporary directory: other gpipe runs on the machine (a
	// second go test beside this one) make FIFO directories of their own.
	t.Setenv("TMPDIR", t.TempDir())
	g := &parser.Graph{
		Stages: []*parser.Stage{{ID: 0}, {ID: 1}},
		Edges:  []*parser.Edge{{From: parser.Port{Stage: 0, FD: 1}, To: parser.Port{Stage: 1, FD: 0}}},
	}
	builtins := []StageInfo{{Name: "a", Rings: true, InProcess: true}, {Name: "b", Rings: true, InProcess: true}}
	for _, tr := range []parser.Transport{parser.TransportPipe, parser.TransportFIFO, parser.TransportShm, parser.TransportMem} {
		p, err := New(g, builtins, Options{Transport: tr, RingSize: 4096})
		if err != nil {
			t.Fatalf("%v: %v", tr, err)
		}
		w, r := p.Ends(0)[0], p.Ends(1)[0]
		var got []byte
		if tr == parser.TransportShm {
			rw, err := OpenRingWriter(w.Ring.Mem, w.Ring.Sock)
			if err != nil {
				t.Fatal(err)
			}
			rr, err := OpenRingReader(r.Ring.Mem, r.Ring.Sock)
			if err != nil {
				t.Fatal(err)
			}
			rw.Write([]byte("through " + tr.String()))
			rw.Close()
			got, _ = io.ReadAll(rr)
			rr.Close()
		} else if tr == parser.TransportMem {
			p.Take(0)[0].Writer.Write([]byte("through " + tr.String()))
			w.Close()
			got, _ = io.ReadAll(r.Reader)
		} else {
			w.File.Write([]byte("through " + tr.String()))
			p.Release(0)
			got, _ = io.ReadAll(r.File)
		}
		if string(got) != "through "+tr.String() {
			t.Errorf("%v: read %q", tr, got)
		}
		if err := p.Close(); err != nil {
			t.Errorf("%v: Close: %v", tr, err)
		}
	}
	// The FIFO's name is gone: nothing is left on disk.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "gpipe-fifo-*"))
	if len(left) > 0 {
		t.Errorf("FIFO directories left behind: %v", left)
	}
}

// TestPipeSizeFor: one run keeps within a quarter of the user's pipe
// budget (default 16384 pages of 4 KiB: 16 MiB for the run).
func TestPipeSizeFor(t *testing.T) {
	for _, tt := range []struct{ n, soft, want int }{
		{1, 16384, 1 << 20},
		{16, 16384, 1 << 20},
		{17, 16384, 512 << 10},
		{64, 16384, 256 << 10},
		{200, 16384, -1},
		{200, 0, 1 << 20},
		{0, 16384, 1 << 20},
	} {
		if got := PipeSizeFor(tt.n, tt.soft); got != tt.want {
			t.Errorf("PipeSizeFor(%d, %d) = %d, want %d", tt.n, tt.soft, got, tt.want)
		}
	}
}

// TestFileSourceStop: a FileSource waiting to read an idle pipe (as a
// builtin waits on a terminal) returns ErrStopped once its Stop closes.
func TestFileSourceStop(t *testing.T) {
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	src := NewFileSource(r)
	defer src.Close()
	stop := NewStop()
	defer stop.Release()
	src.SetStop(stop)
	src.WatchReads()
	errc := make(chan error, 1)
	go func() {
		_, err := src.Peek(1)
		errc <- err
	}()
	// Nothing is ever written: only the stop can end the Peek.
	stop.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrStopped) {
			t.Errorf("Peek after the stop: %v, want ErrStopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Peek of an idle pipe still waiting 10 s after the stop")
	}
}

// TestStopEndsPolledWaits: a FileSource reading, and a FileSink writing, a
// pipe end in non-blocking mode (in the runtime's poller) return
// ErrStopped once their Stop closes, with no poll before each read: the
// other end is held open and neither reads nor writes, so only the stop
// can end them.
func TestStopEndsPolledWaits(t *testing.T) {
	nonblocking := func(f *os.File) *os.File {
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
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	src := NewFileSource(nonblocking(r))
	defer src.Close()
	r2, w2, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	sink := NewFileSink(nonblocking(w2))
	defer sink.Close()
	stop := NewStop()
	defer stop.Release()
	src.SetStop(stop)
	sink.SetStop(stop)
	errc := make(chan error, 2)
	go func() {
		_, err := src.Peek(1)
		errc <- err
	}()
	go func() {
		// More than the pipe holds: the write waits once it is full.
		errc <- Write(sink, make([]byte, 4<<20))
	}()
	// Both wait in the poller before the stop, or the test shows nothing.
	waitInPoller(t, "(*FileSource).Peek")
	waitInPoller(t, "(*FileSink).Write")
	stop.Close()
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, ErrStopped) {
				t.Errorf("after the stop: %v, want ErrStopped", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a read or write still waiting 10 s after the stop")
		}
	}
}

// waitInPoller waits until a goroutine whose stack holds fn waits in the
// runtime's poller ("IO wait").
func waitInPoller(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, fn) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine in %s waits in the poller after 10 s", fn)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
