package plumbing

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

// TestOutOfDescriptors: with the soft limit of descriptors lowered to
// what the process holds, a pipe cannot be made; the plan's error says
// what it needs and the limit, with the system's error.
func TestOutOfDescriptors(t *testing.T) {
	old := fdSoftLimit(t)
	g, err := parser.Parse("spec", "a | b | c", parser.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(g, make([]StageInfo, 3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Every descriptor below the limit taken: no hole to make a pipe in.
	limit := openFDs(t) + 8
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(limit), Max: old.Max}); err != nil {
		t.Skip(err)
	}
	var held []*os.File
	restore := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore the limit of descriptors: %v", err)
		}
	}
	defer restore()
	for range limit {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	_, _, pipeErr := Pipe(-1)
	openErr := p.Open(0)
	restore()
	if pipeErr == nil || pipeErr.Error() != "create pipe: too many open files" || !errors.Is(pipeErr, unix.EMFILE) {
		t.Errorf("Pipe with no descriptor left: %v, want create pipe: too many open files", pipeErr)
	}
	// Every descriptor is taken: counting them would take one more.
	var le *LimitError
	want := fmt.Sprintf("edge 1: create pipe: too many open files: the pipeline needs up to %d descriptors, and gpipe holds %d already: more than the limit of %d (ulimit -n)",
		p.need.FDs, limit, limit)
	if !errors.As(openErr, &le) || openErr.Error() != want {
		t.Errorf("Open with no descriptor left: %v, want %s", openErr, want)
	}
	// With descriptors back, the edge is made.
	if err := p.Open(0); err != nil || len(p.Ends(0)) != 1 || p.Ends(0)[0].FD != 1 {
		t.Errorf("Open once descriptors are back: %v, ends %v", err, p.Ends(0))
	}
	// A plan that needs more than the limit is refused before anything is made.
	t.Setenv("TMPDIR", t.TempDir())
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(openFDs(t) + 2), Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	_, err = New(g, make([]StageInfo, 3), Options{Transport: parser.TransportFIFO})
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.As(err, &le) || le.What != "descriptors" || !strings.HasPrefix(err.Error(), "the pipeline needs up to ") {
		t.Errorf("New over the limit: %v, want a LimitError", err)
	}
}
