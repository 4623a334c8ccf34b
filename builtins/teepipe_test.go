package builtins

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// stepDeadline bounds every wait in these tests: it catches a hang, it
// does not measure speed.
const stepDeadline = 10 * time.Second

// output is how one of tee's outputs is read, in TestTeeBetweenPipes.
type output string

const (
	fast    output = "fast"    // a pipe read as fast as it comes
	slow    output = "slow"    // a pipe read 512 bytes at a time, once it is full
	gone    output = "gone"    // a pipe whose reader has gone
	regular output = "regular" // a regular file
	null    output = "null"    // /dev/null
	full    output = "full"    // /dev/full: every write fails
)

// pipeFiles opens tee's FILEs as the test wants them read.
type pipeFiles struct {
	t     *testing.T
	dir   string
	kinds map[string]output
	mu    sync.Mutex
	reads []func() string // each output's reader, to wait for
	names []string
}

// open makes an output of kind k named name, and returns its sink.
func (p *pipeFiles) open(name string, k output) (plumbing.Sink, error) {
	var wait func() string
	var sink plumbing.Sink
	switch k {
	case regular, null, full:
		path := filepath.Join(p.dir, name)
		switch k {
		case null:
			path = os.DevNull
		case full:
			path = "/dev/full"
		}
		s, err := OSFiles{}.Create(path, false)
		if err != nil {
			return nil, err
		}
		sink = s
		wait = func() string {
			if k != regular {
				return ""
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err.Error()
			}
			return string(b)
		}
	default:
		r, w, err := plumbing.Pipe(-1)
		if err != nil {
			return nil, err
		}
		sink = plumbing.NewFileSink(w)
		got := make(chan string, 1)
		go func() {
			defer r.Close()
			switch k {
			case gone:
				got <- ""
				return
			case slow:
				// Let the pipe fill before the first read.
				fillDeadline := time.Now().Add(stepDeadline)
				for !pipeFull(r) && time.Now().Before(fillDeadline) {
					time.Sleep(time.Millisecond)
				}
				var b bytes.Buffer
				buf := make([]byte, 512)
				for {
					n, err := r.Read(buf)
					b.Write(buf[:n])
					if err != nil {
						got <- b.String()
						return
					}
				}
			}
			b, _ := io.ReadAll(r)
			got <- string(b)
		}()
		wait = func() string {
			select {
			case s := <-got:
				return s
			case <-time.After(stepDeadline):
				p.t.Errorf("output %s: still reading after %v", name, stepDeadline)
				return ""
			}
		}
	}
	p.mu.Lock()
	p.reads = append(p.reads, wait)
	p.names = append(p.names, name)
	p.mu.Unlock()
	return sink, nil
}

// pipeFull reports whether the pipe holds as much as it can.
func pipeFull(r *os.File) bool {
	queued, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
	if err != nil {
		return true
	}
	size, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	return err != nil || queued >= size
}

func (p *pipeFiles) Open(name string) (plumbing.Source, error) { return nil, os.ErrInvalid }

func (p *pipeFiles) Create(name string, _ bool) (plumbing.Sink, error) {
	return p.open(name, p.kinds[name])
}

// TestTeeBetweenPipes runs tee on a pipe, into pipes read fast, slowly or
// not at all, and files, as gpipe runs it between programs, and checks
// what every output got.
func TestTeeBetweenPipes(t *testing.T) {
	data := random(0, 3<<20, 5) // 48 times a default pipe
	tests := []struct {
		name   string
		flags  []string
		stdout output
		files  []output
		err    string
	}{
		{"pipes", nil, fast, []output{fast, fast}, ""},
		{"copying", []string{"--copy"}, fast, []output{fast, fast}, ""},
		{"a slow reader", nil, fast, []output{slow, fast}, ""},
		{"a slow reader, copying", []string{"--copy"}, fast, []output{slow}, ""},
		{"a reader gone", nil, fast, []output{gone, fast}, ""},
		{"every reader gone", nil, gone, []output{gone}, "every output: broken pipe"},
		{"into a file", nil, regular, []output{fast}, ""},
		{"into /dev/null", nil, null, []output{fast, regular}, ""},
		{"into files only", nil, regular, []output{regular}, ""},
		{"a write fails", nil, fast, []output{full}, "f1: write /dev/full: no space left on device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := &pipeFiles{t: t, dir: t.TempDir(), kinds: map[string]output{}}
			args := append([]string{"--buffer", "128KiB"}, tt.flags...)
			for i, k := range tt.files {
				name := fmt.Sprintf("f%d", i+1)
				files.kinds[name] = k
				args = append(args, name)
			}
			run, err := Default()["tee"].Parse(args)
			if err != nil {
				t.Fatal(err)
			}
			out, err := files.open("stdout", tt.stdout)
			if err != nil {
				t.Fatal(err)
			}
			r, w, err := plumbing.Pipe(-1)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				w.Write(data)
				w.Close()
			}()
			in := plumbing.NewFileSource(r)
			done := make(chan error, 1)
			go func() {
				err := run(in, out, files)
				in.Close()
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(stepDeadline):
				t.Fatalf("tee still running after %v", stepDeadline)
			}
			if errString(err) != tt.err {
				t.Errorf("error %q, want %q", errString(err), tt.err)
			}
			for i, read := range files.reads {
				name := files.names[i]
				kind := tt.stdout
				if name != "stdout" {
					kind = files.kinds[name]
				}
				got := read()
				want := string(data)
				if kind == gone || kind == null || kind == full {
					want = ""
				}
				if got != want {
					t.Errorf("%s (%s) got %d bytes, want %d (equal: false)", name, kind, len(got), len(want))
				}
			}
		})
	}
}

// TestTeeWaitsForOutputsToOpen: tee opens each output in a goroutine of
// its own (a FIFO's open waits for its reader), and copies to the others
// meanwhile: standard output gets every byte while the other output is
// not open yet, and that one gets every byte once it is.
func TestTeeWaitsForOutputsToOpen(t *testing.T) {
	data := strings.Repeat("a line of text\n", 1000)
	run, err := Default()["tee"].Parse([]string{"late"})
	if err != nil {
		t.Fatal(err)
	}
	v := vias[0]
	open := make(chan struct{})
	files := &lateFiles{memFiles: newMemFiles(v, nil), open: open}
	out := &notifyWriter{want: len(data), all: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(v.src(strings.NewReader(data)), v.sink(out), files) }()
	select {
	case <-out.all:
	case <-time.After(stepDeadline):
		t.Fatalf("standard output has %d bytes of %d after %v, while the other output is not open", out.buf.Len(), len(data), stepDeadline)
	}
	close(open)
	select {
	case err = <-done:
	case <-time.After(stepDeadline):
		t.Fatalf("tee still running after %v", stepDeadline)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := out.buf.String(); got != data {
		t.Errorf("stdout got %d bytes, want %d", len(got), len(data))
	}
	if got := files.written(); got != fmt.Sprintf("late=%q;", data) {
		t.Errorf("the late output got %d bytes, want %d", len(got), len(data))
	}
}

// notifyWriter closes all once it holds want bytes.
type notifyWriter struct {
	buf  bytes.Buffer
	want int
	all  chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	if w.buf.Len() >= w.want && w.buf.Len()-n < w.want {
		close(w.all)
	}
	return n, err
}

// lateFiles is a memFiles whose Create waits for open to be closed.
type lateFiles struct {
	*memFiles
	open chan struct{}
}

func (l *lateFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	<-l.open
	return l.memFiles.Create(name, appendTo)
}
