package plumbing

import (
	"io"
	"testing"

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
	p, err := New(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Transports; len(got) != 2 || got[0] != parser.TransportPipe || got[1] != parser.TransportPipe {
		t.Errorf("Transports = %v, want [pipe pipe]", got)
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

func TestPlanRefusesUnavailableTransport(t *testing.T) {
	g := &parser.Graph{
		Stages: []*parser.Stage{{ID: 0}, {ID: 1}},
		Edges:  []*parser.Edge{{From: parser.Port{Stage: 0, FD: 1}, To: parser.Port{Stage: 1, FD: 0}, Transport: parser.TransportShm}},
	}
	if _, err := New(g, Options{}); err == nil || err.Error() != "edge 1: transport shm is not available" {
		t.Errorf("New error = %v, want edge 1: transport shm is not available", err)
	}
}
