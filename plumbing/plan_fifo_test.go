package plumbing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/gpipe/gpipe/parser"
)

// fifoGraph parses spec with every process substitution a named FIFO in
// a fresh FIFO directory under a private TMPDIR, and returns the graph
// and that directory.
func fifoGraph(t *testing.T, spec string) (*parser.Graph, string) {
	t.Helper()
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := NewFIFODir()
	if err != nil {
		t.Fatal(err)
	}
	g, err := parser.Parse("spec", spec, parser.Config{})
	if err != nil {
		t.Fatal(err)
	}
	NameFIFOs(g, dir, true)
	return g, dir
}

// TestPlanNamedFIFO: a process substitution under --transport fifo is a
// FIFO at the path the stage was given, in a private directory; the other
// side opens it through a redirection; once either side has ended, an
// open still waiting for the other is woken and the name removed; Close
// removes the directory.
func TestPlanNamedFIFO(t *testing.T) {
	tests := []struct {
		spec       string
		redirStage int
		redir      string // Op and FD of the redirection
	}{
		{"cat <(gen) | wc", 1, "write 1"}, // gen writes the FIFO cat reads by its path
		{"tee >(cat)", 1, "read 0"},       // cat reads the FIFO tee writes by its path
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			g, dir := fifoGraph(t, tt.spec)
			path := filepath.Join(dir, "1")
			p, err := New(g, make([]StageInfo, len(g.Stages)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if c := p.Choices[0]; c.Transport != parser.TransportFIFO || c.Reason != "the stage opens it by its path" {
				t.Errorf("choice %v, want a FIFO the stage opens by its path", c)
			}
			fi, err := os.Stat(dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("FIFO directory: %v, %v; want mode 0700", fi, err)
			}
			fi, err = os.Stat(path)
			if err != nil || fi.Mode().Type() != os.ModeNamedPipe {
				t.Fatalf("%s: %v, %v; want a FIFO", path, fi, err)
			}
			for i := range g.Stages {
				var got []string
				for _, r := range p.FIFORedirects(i) {
					op := map[parser.RedirOp]string{parser.RedirRead: "read", parser.RedirWrite: "write"}[r.Op]
					got = append(got, fmt.Sprintf("%s %d %s %s", op, r.FD, r.Path, r.Pos))
				}
				var want []string
				if i == tt.redirStage {
					want = []string{fmt.Sprintf("%s %s %s", tt.redir, path, g.Edges[0].Pos)}
				}
				if !slices.Equal(got, want) {
					t.Errorf("stage %d's FIFO redirections: %q, want %q", i+1, got, want)
				}
			}
			// Bytes pass, each side opening it by its path.
			got := make(chan string, 1)
			go func() {
				f, err := os.Open(path)
				if err != nil {
					got <- err.Error()
					return
				}
				b, _ := io.ReadAll(f)
				f.Close()
				got <- string(b)
			}()
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("through the FIFO"))
			w.Close()
			within(t, "the FIFO's reader", func() {
				if s := <-got; s != "through the FIFO" {
					t.Errorf("read %q", s)
				}
			})
			// A reader that opens it again waits for a writer that has
			// ended: Exited wakes it with the end of file, and removes
			// the name.
			go func() {
				f, err := os.Open(path)
				if err != nil {
					got <- err.Error()
					return
				}
				b, _ := io.ReadAll(f)
				f.Close()
				got <- "read " + strconv.Quote(string(b))
			}()
			waitBlockedIn(t, "os.Open(")
			p.Exited(tt.redirStage)
			within(t, "the waiting open", func() {
				if s := <-got; s != `read ""` {
					t.Errorf("the waiting reader got %s, want the end of file", s)
				}
			})
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after Exited: %v, want it gone", path, err)
			}
			p.Exited(0) // the other side: nothing left to do
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after Close: %v, want it gone", dir, err)
			}
		})
	}
}

// TestPlanNamedFIFOsInOneDirectory: a plan's FIFOs share one directory; a
// FIFO named elsewhere is refused, and what was made is undone.
func TestPlanNamedFIFOsInOneDirectory(t *testing.T) {
	g, dir := fifoGraph(t, "diff <(a) <(b)")
	other := filepath.Join(filepath.Dir(dir), "elsewhere", "2")
	g.Edges[1].To.Name, g.Edges[1].FIFO = other, other
	_, err := New(g, make([]StageInfo, 3), Options{})
	want := fmt.Sprintf("edge 2: FIFO %s is not in %s", other, dir)
	if err == nil || err.Error() != want {
		t.Errorf("New = %v, want %s", err, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the failure: %v, want it gone", dir, err)
	}
	// A FIFO directory that exists already is no private one.
	g, dir = fifoGraph(t, "cat <(a)")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = New(g, make([]StageInfo, 2), Options{})
	want = fmt.Sprintf("FIFO directory: mkdir %s: file exists", dir)
	if err == nil || err.Error() != want {
		t.Errorf("New = %v, want %s", err, want)
	}
}

// TestPlanSharedEnd: a process substitution inherits its parent's stdout,
// as in bash: a copy of the pipe's end, which stays a descriptor.
func TestPlanSharedEnd(t *testing.T) {
	g, err := parser.Parse("spec", "tee >(cat) | wc", parser.Config{})
	if err != nil {
		t.Fatal(err)
	}
	builtins := []StageInfo{{Name: "tee", Rings: true, InProcess: true}, {Name: "cat", Why: "is an external program"}, {Name: "wc", Why: "is an external program"}}
	p, err := New(g, builtins, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Stage 2 (cat) has its stdin from tee's /dev/fd/63, and tee's stdout.
	var catOut, wcIn *os.File
	for _, e := range p.Ends(1) {
		if e.FD == 1 {
			catOut = e.File
		}
	}
	for _, e := range p.Ends(2) {
		if e.FD == 0 {
			wcIn = e.File
		}
	}
	if catOut == nil || wcIn == nil {
		t.Fatalf("ends: cat %v, wc %v; want cat's stdout shared with tee's", p.Ends(1), p.Ends(2))
	}
	catOut.Write([]byte("from cat"))
	p.Release(0)
	p.Release(1)
	within(t, "wc's input", func() {
		if b, err := io.ReadAll(wcIn); string(b) != "from cat" || err != nil {
			t.Errorf("wc read %q, %v", b, err)
		}
	})
	// What can be shared is a descriptor; a ring side cannot be.
	g = &parser.Graph{
		Stages: []*parser.Stage{{ID: 0}, {ID: 1}},
		Edges:  []*parser.Edge{{From: parser.Port{Stage: 0, FD: 1}, To: parser.Port{Stage: 1, FD: 0}}},
	}
	rings := []StageInfo{{Name: "a", Rings: true, InProcess: true}, {Name: "b", Rings: true, InProcess: true}}
	p2, err := New(g, rings, Options{RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	for _, tt := range []struct {
		port parser.Port
		want string
	}{
		{parser.Port{Stage: 0, FD: 1}, "shared end stdout of stage 1 is not a descriptor"},
		{parser.Port{Stage: 0, FD: 2}, "no edge at fd 2 of stage 1"},
	} {
		if _, err := p2.dupEnd(tt.port); err == nil || err.Error() != tt.want {
			t.Errorf("dupEnd(%v) = %v, want %s", tt.port, err, tt.want)
		}
	}
}

// TestPlanOpenAfterRelease: a lazy pipe whose other stage never ran (it
// was released first) is made with that end closed, so that the stage
// that runs sees a broken pipe, not a reader that never comes.
func TestPlanOpenAfterRelease(t *testing.T) {
	g, err := parser.Parse("spec", "a | b", parser.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(g, make([]StageInfo, 2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Release(1); err != nil {
		t.Fatal(err)
	}
	if err := p.Open(0); err != nil {
		t.Fatal(err)
	}
	if err := p.Open(7); err != nil {
		t.Errorf("Open of a stage past the end: %v", err)
	}
	ends := p.Ends(0)
	if len(ends) != 1 || ends[0].FD != 1 || len(p.Ends(1)) != 0 {
		t.Fatalf("ends %v and %v, want stage 1's stdout alone", ends, p.Ends(1))
	}
	if _, err := ends[0].File.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write with the reader released: %v, want EPIPE", err)
	}
}

// TestFIFOEndsErrors: the errors of making an edge's FIFO name the path.
func TestFIFOEndsErrors(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists")
	if err := os.WriteFile(exists, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing", "f")
	for _, tt := range []struct{ path, want string }{
		{exists, "create FIFO " + exists + ": file exists"},
		{missing, "create FIFO " + missing + ": no such file or directory"},
	} {
		if _, _, err := fifoEnds(tt.path); err == nil || err.Error() != tt.want {
			t.Errorf("fifoEnds(%s) = %v, want %s", tt.path, err, tt.want)
		}
	}
}

// TestSweepFIFODirs: the FIFO directories of gpipe processes that are
// gone are removed; those of running ones, and anything else, stay.
func TestSweepFIFODirs(t *testing.T) {
	dir := t.TempDir()
	const hex = "0123456789abcdef"
	dead := "4194305" // above any pid_max: no such process
	entries := []struct {
		name  string
		isDir bool
		kept  bool
	}{
		{"gpipe-fifo-" + dead + "-" + hex, true, false},
		{"gpipe-fifo-" + strconv.Itoa(os.Getpid()) + "-" + hex, true, true},
		{"gpipe-fifo-" + dead + "-0123456789ABCDEF", true, true},
		{"gpipe-fifo-" + dead + "-0123", true, true},
		{"gpipe-fifo-0-" + hex, true, true},
		{"gpipe-fifo-x-" + hex, true, true},
		{"gpipe-fifo-4194306-" + hex, false, true},
		{"other-" + dead + "-" + hex, true, true},
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.name)
		var err error
		if e.isDir {
			err = os.Mkdir(path, 0o700)
			if err == nil {
				err = os.WriteFile(filepath.Join(path, "1"), nil, 0o600)
			}
		} else {
			err = os.WriteFile(path, nil, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	SweepFIFODirs(dir)
	SweepFIFODirs(filepath.Join(dir, "missing"))
	for _, e := range entries {
		_, err := os.Stat(filepath.Join(dir, e.name))
		if kept := err == nil; kept != e.kept {
			t.Errorf("%s: kept %v, want %v", e.name, kept, e.kept)
		}
	}
}
