package report

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/internal/procs"
	"github.com/gpipe/gpipe/parser"
)

func TestStageLabel(t *testing.T) {
	for _, c := range []struct {
		st   parser.Stage
		want string
	}{
		{parser.Stage{ID: 1, Args: []string{"grep", "x"}}, "[2 grep] "},
		{parser.Stage{ID: 0, Args: []string{"/usr/bin/sort"}}, "[1 /usr/bin/sort] "},
		{parser.Stage{ID: 2, Args: []string{"grep"}, Label: "errs"}, "[3 errs: grep] "},
		{parser.Stage{ID: 4, Args: []string{"tee", "/dev/fd/63"}, Added: "copies stdout of @src to its 2 readers"}, "[5 tee, added by gpipe] "},
		{parser.Stage{ID: 3}, "[4] "},
		{parser.Stage{ID: 3, Label: "out"}, "[4 out:] "},
		{parser.Stage{ID: 0, Args: []string{"a\nb\tc"}}, "[1 a?b?c] "},
	} {
		if got := stageLabel(&c.st); got != c.want {
			t.Errorf("stageLabel(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}

// relayed runs the relay of one stage, labelled "[1 a] ", over what
// writes writes to its stderr, and returns what reached gpipe's stderr.
func relayed(t *testing.T, writes ...string) string {
	t.Helper()
	var out bytes.Buffer
	l, err := NewLabeller(&out, &parser.Graph{Stages: []*parser.Stage{{ID: 0, Args: []string{"a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	w := l.writers[0]
	go func() {
		for _, s := range writes {
			if _, err := w.WriteString(s); err != nil {
				t.Error(err)
			}
		}
		l.CloseWriters()
	}()
	l.Finish(time.Minute) // ends at the end of the pipe
	return out.String()
}

func TestLabelLines(t *testing.T) {
	long := strings.Repeat("x", maxLabelledLine)
	// A three-byte character across the end of the first piece: it goes
	// whole into the second.
	euro := strings.Repeat("y", maxLabelledLine-2) + "€z"
	for _, c := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing", nil, ""},
		{"lines", []string{"one\ntwo\n"}, "[1 a] one\n[1 a] two\n"},
		{"split across writes", []string{"o", "ne\nt", "wo\n"}, "[1 a] one\n[1 a] two\n"},
		{"empty lines", []string{"\n\nx\n"}, "[1 a] \n[1 a] \n[1 a] x\n"},
		{"last line without newline", []string{"one\nlast"}, "[1 a] one\n[1 a] last\n"},
		{"line of the longest size", []string{long[:maxLabelledLine-1] + "\n"}, "[1 a] " + long[:maxLabelledLine-1] + "\n"},
		{"overlong line in pieces", []string{long + long + "tail\n"}, "[1 a] " + long + "\n[1 a] " + long + "\n[1 a] tail\n"},
		{"piece not cut in a character", []string{euro + "\n"}, "[1 a] " + euro[:maxLabelledLine-2] + "\n[1 a] €z\n"},
		{"binary", []string{"\x00\xff\x80\n"}, "[1 a] \x00\xff\x80\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := relayed(t, c.writes...); got != c.want {
				if len(got) > 200 || len(c.want) > 200 {
					t.Fatalf("got %d bytes, want %d (%q… vs %q…)", len(got), len(c.want), got[:min(len(got), 100)], c.want[:min(len(c.want), 100)])
				}
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestLabelFinishStops: a write end held open past the stages (a
// descendant that left the pipeline's group) does not hold Finish up
// beyond its bound; what the pipes hold is written, a partial line with a
// newline; and nothing of the labeller is left open or running.
func TestLabelFinishStops(t *testing.T) {
	// The runtime's poller opens its descriptors at its first use.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	var out bytes.Buffer
	g := &parser.Graph{Stages: []*parser.Stage{{ID: 0, Args: []string{"a"}}, {ID: 1, Args: []string{"b"}}}}
	l, err := NewLabeller(&out, g)
	if err != nil {
		t.Fatal(err)
	}
	escaped, err := unix.Dup(int(l.writers[1].Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(escaped)
	if _, err := l.writers[0].WriteString("done\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(escaped, []byte("whole\npartial")); err != nil {
		t.Fatal(err)
	}
	l.CloseWriters()
	// Whether the relays have read their pipes by then or not, what they
	// hold comes out.
	l.Finish(0)
	// Each stage's lines in order, the stages' in any.
	got := out.String()
	if !strings.Contains(got, "[1 a] done\n") || strings.Replace(got, "[1 a] done\n", "", 1) != "[2 b] whole\n[2 b] partial\n" {
		t.Errorf("got %q, want the lines [1 a] done, and [2 b] whole then [2 b] partial", got)
	}
	if got := openFDs(t); got != fds+1 { // escaped
		t.Errorf("%d descriptors open, want %d", got, fds+1)
	}
	// The goroutine that waited for the relays may not have exited yet.
	deadline := time.Now().Add(procs.Scaled(10 * time.Second))
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines, want %d", n, goroutines)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
