package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
)

// These tests run the helper process (RunChild) as gpipe runs it: this
// test binary re-executed with ChildArg (see TestMain), its instructions
// on a descriptor. Under "go test -cover" the helper's own coverage
// counts: cmd/go sets GOCOVERDIR for the test binary, a test binary run
// as a tool writes its counters there when it exits, and the report
// merges them.

// helperRun is one run of a helper process.
type helperRun struct {
	code           int
	stdout, stderr string
}

// startHelper starts this test binary as the helper of stage "stage 1
// (name)" with the given arguments after ChildArg (nil: the descriptor of
// spec's instructions, then the stage), stdin as its standard input, and
// extra as its descriptors from 4 on. The caller waits with cmd.Wait.
func startHelper(t *testing.T, ctx context.Context, spec *childSpec, args []string, stdin *os.File, extra ...*os.File) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if spec != nil {
		data, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if args == nil {
		args = []string{"3", spec.Stage}
	}
	cmd := exec.CommandContext(ctx, self, append([]string{ChildArg}, args...)...)
	cmd.Args[0] = "gpipe"
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = append([]*os.File{r}, extra...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

// runHelper runs the helper to its end, within the scaled deadline.
func runHelper(t *testing.T, spec *childSpec, args []string, input string, extra ...*os.File) helperRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scaled(20*time.Second))
	defer cancel()
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if input != "" {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := w.WriteString(input); err != nil {
			t.Fatal(err)
		}
		w.Close()
		stdin = r
	}
	cmd, stdout, stderr := startHelper(t, ctx, spec, args, stdin, extra...)
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the helper did not end within %v", scaled(20*time.Second))
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return helperRun{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestHelperBadStart: a helper started wrongly says so, with status 125.
func TestHelperBadStart(t *testing.T) {
	tests := []struct {
		name string
		args []string
		spec *childSpec // written on descriptor 3
		want string
	}{
		{"one argument", []string{"3"}, nil,
			"gpipe: --gpipe-stage-child: want two arguments, the instructions' descriptor and the stage\n"},
		{"no number", []string{"x", "stage 1 (cat)"}, nil,
			"gpipe: --gpipe-stage-child: bad helper instructions: bad instructions descriptor \"x\"\n"},
		{"a standard descriptor", []string{"1", "stage 1 (cat)"}, nil,
			"gpipe: --gpipe-stage-child: bad helper instructions: bad instructions descriptor \"1\"\n"},
		{"not open", []string{"9", "stage 1 (cat)"}, nil,
			"gpipe: --gpipe-stage-child: bad helper instructions: bad file descriptor\n"},
		{"empty instructions", []string{"3", "stage 1 (cat)"}, nil,
			"gpipe: --gpipe-stage-child: bad helper instructions: unexpected end of JSON input\n"},
		{"no such builtin", nil, &childSpec{Stage: "stage 1 (nope)", Builtin: "nope", Args: []string{"nope"}},
			"gpipe: stage 1 (nope): no builtin \"nope\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := runHelper(t, tt.spec, tt.args, "")
			if h.code != 125 || h.stderr != tt.want || h.stdout != "" {
				t.Errorf("status %d, stderr %q, stdout %q; want 125, %q, nothing", h.code, h.stderr, h.stdout, tt.want)
			}
		})
	}
}

// TestHelperBuiltinUsage: a builtin whose arguments its helper does not
// take ends with status 2 and the builtin's own message.
func TestHelperBuiltinUsage(t *testing.T) {
	_, usage := builtins.Default()["head"].Parse([]string{"--bogus"})
	if usage == nil {
		t.Fatal("head takes --bogus")
	}
	h := runHelper(t, &childSpec{Stage: "stage 1 (head)", Builtin: "head", Args: []string{"head", "--bogus"}}, nil, "")
	if want := "gpipe: stage 1 (head): " + usage.Error() + "\n"; h.code != 2 || h.stderr != want {
		t.Errorf("status %d, stderr %q; want 2, %q", h.code, h.stderr, want)
	}
}

// TestHelperRedirections: a helper applies the stage's redirections
// itself, in order, as bash does in the stage's process, and reports the
// first that fails on the stderr the stage has by then, status 1.
func TestHelperRedirections(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	missing := filepath.Join(dir, "missing")
	cat := func(redirs ...parser.Redirect) *childSpec {
		return &childSpec{Stage: "stage 1 (cat)", Builtin: "cat", Args: []string{"cat"}, Redirs: redirs}
	}
	tests := []struct {
		name   string
		spec   *childSpec
		code   int
		stdout string
		stderr string
		file   string // what out, "before\n" at the start, holds after
	}{
		{"only redirections", &childSpec{Stage: "stage 1", Redirs: []parser.Redirect{{FD: 1, Op: parser.RedirWrite, Path: out}}},
			0, "", "", ""},
		{"input missing", cat(parser.Redirect{FD: 0, Op: parser.RedirRead, Path: missing}),
			1, "", "gpipe: " + missing + ": No such file or directory\n", "before\n"},
		{"bad descriptor", cat(parser.Redirect{FD: 0, Op: parser.RedirDup, DupFD: 9}),
			1, "", "gpipe: 9: Bad file descriptor\n", "before\n"},
		{"message where stderr went", cat(parser.Redirect{FD: 2, Op: parser.RedirWrite, Path: out}, parser.Redirect{FD: 0, Op: parser.RedirRead, Path: missing}),
			1, "", "", "gpipe: " + missing + ": No such file or directory\n"},
		{"not supported", cat(parser.Redirect{FD: 0, Op: parser.RedirOp(99)}),
			1, "", "gpipe: redirection 99 is not supported\n", "before\n"},
		{"stdout to stderr", cat(parser.Redirect{FD: 1, Op: parser.RedirDup, DupFD: 2}),
			0, "", "in\n", "before\n"},
		{"append", cat(parser.Redirect{FD: 1, Op: parser.RedirAppend, Path: out}, parser.Redirect{FD: 1, Op: parser.RedirAppend, Path: out}),
			0, "", "", "before\nin\n"},
		{"stdout closed", cat(parser.Redirect{FD: 1, Op: parser.RedirClose}),
			1, "", "gpipe: stage 1 (cat): standard output: bad file descriptor\n", "before\n"},
		{"stdin closed", cat(parser.Redirect{FD: 0, Op: parser.RedirClose}),
			1, "", "gpipe: stage 1 (cat): standard input: bad file descriptor\n", "before\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(out, []byte("before\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.spec.Closed = closedStd(&fdTable{closed: map[int]bool{}}, tt.spec.Redirs)
			h := runHelper(t, tt.spec, nil, "in\n")
			if h.code != tt.code || h.stdout != tt.stdout || h.stderr != tt.stderr {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, %q", h.code, h.stdout, h.stderr, tt.code, tt.stdout, tt.stderr)
			}
			if got, err := os.ReadFile(out); err != nil || string(got) != tt.file {
				t.Errorf("out holds %q (%v), want %q", got, err, tt.file)
			}
		})
	}
}

// TestHelperFIFOs: a helper opens the stage's named FIFOs first; one that
// is gone (its other side ended without opening it) is an empty input,
// or for a writer a broken pipe, status 141; one that is there carries
// the data.
func TestHelperFIFOs(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "gone")
	cat := func(r parser.Redirect) *childSpec {
		return &childSpec{Stage: "stage 1 (cat)", Builtin: "cat", Args: []string{"cat"}, Redirs: []parser.Redirect{r}, FIFOs: 1}
	}
	h := runHelper(t, cat(parser.Redirect{FD: 0, Op: parser.RedirRead, Path: gone}), nil, "not read\n")
	if h.code != 0 || h.stdout != "" || h.stderr != "" {
		t.Errorf("reader of a gone FIFO: status %d, stdout %q, stderr %q; want 0 and nothing", h.code, h.stdout, h.stderr)
	}
	h = runHelper(t, cat(parser.Redirect{FD: 1, Op: parser.RedirWrite, Path: gone}), nil, "in\n")
	if h.code != 141 || h.stdout != "" || h.stderr != "" {
		t.Errorf("writer to a gone FIFO: status %d, stdout %q, stderr %q; want 141 and nothing", h.code, h.stdout, h.stderr)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the writer made a file of the gone FIFO: %v", err)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scaled(20*time.Second))
	defer cancel()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	cmd, stdout, stderr := startHelper(t, ctx, cat(parser.Redirect{FD: 0, Op: parser.RedirRead, Path: fifo}), nil, null)
	// The helper's open waits for a writer: this one, once the helper
	// reads.
	var w *os.File
	waitUntil(t, 20*time.Second, "the helper opens the FIFO", func() bool {
		w, err = os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0)
		return err == nil
	})
	if _, err := w.WriteString("through the fifo\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := cmd.Wait(); err != nil || stdout.String() != "through the fifo\n" || stderr.String() != "" {
		t.Errorf("reader of a FIFO: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}

// TestHelperProgram: a helper replaces itself with the stage's program,
// with the standard descriptors the stage closed closed again; a script
// without "#!" runs with sh, as in bash; one whose interpreter is missing
// fails as bash says, 126; and when gpipe is gone already, the helper
// ends as killed.
func TestHelperProgram(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", "if read x 2>/dev/null; then echo read $x; else echo closed; fi\n")
	bad := write("bad", "#!"+dir+"/nonexistent\n")
	env := os.Environ()
	prog := func(path string, closed ...int) *childSpec {
		return &childSpec{Stage: "stage 1 (x)", Path: path, Args: []string{path}, Env: env, Closed: closed, Parent: os.Getpid()}
	}
	tests := []struct {
		name           string
		spec           *childSpec
		code           int
		stdout, stderr string
	}{
		{"script without #!", prog(plain), 0, "read in\n", ""},
		{"stdin closed", prog(plain, 0), 0, "closed\n", ""},
		{"bad interpreter", prog(bad), 126, "", "gpipe: " + bad + ": " + dir + "/nonexistent: bad interpreter: No such file or directory\n"},
		{"gpipe gone", &childSpec{Stage: "stage 1 (true)", Path: "/bin/true", Args: []string{"true"}, Env: env, Parent: 1}, 137, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := runHelper(t, tt.spec, nil, "in\n")
			if h.code != tt.code || h.stdout != tt.stdout || h.stderr != tt.stderr {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, %q", h.code, h.stdout, h.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// TestHelperQuit: SIGQUIT ends a helper as it ends a program that does
// not catch it, 131, without the Go runtime's dump.
func TestHelperQuit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), scaled(20*time.Second))
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(childSpec{Stage: "stage 1 (cat)", Builtin: "cat", Args: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	if _, err := sw.Write(spec); err != nil {
		t.Fatal(err)
	}
	sw.Close()
	cmd := exec.CommandContext(ctx, self, ChildArg, "3", "stage 1 (cat)")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = r, outW, &stderr, []*os.File{sr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	// Once a line came through, the helper runs its builtin: its
	// SIGQUIT handler is in place.
	if _, err := w.WriteString("line\n"); err != nil {
		t.Fatal(err)
	}
	outR.SetReadDeadline(time.Now().Add(scaled(20 * time.Second)))
	buf := make([]byte, 5)
	if _, err := outR.Read(buf); err != nil || string(buf) != "line\n" {
		t.Fatalf("read %q, %v; want the line", buf, err)
	}
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 131 || stderr.Len() != 0 {
		t.Errorf("status %d, stderr %q; want 131 and nothing", code, stderr.String())
	}
}

// TestIsolatedBuiltins runs builtins in helper processes (Place's
// isolate): over shm rings between them, pipes to programs, ring and
// pipe ports of process substitutions, and files.
func TestIsolatedBuiltins(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		spec   string
		stdout string
		codes  []int
		files  map[string]string
	}{
		{"gen -n 5 | cat | count", "5\n", []int{0, 0, 0}, nil},
		{"gen -n 3 | tee >(count > " + dir + "/c) | count", "3\n", []int{0, 0, 0, 0}, map[string]string{"c": "3\n"}},
		{"merge <(gen -n 2) <(gen -n 3) | count", "5\n", []int{0, 0, 0, 0}, nil},
		{"gen -n 3 | tee >(sh -c 'cat > " + dir + "/p') | count", "3\n", []int{0, 0, 0, 0}, map[string]string{"p": "1\n2\n3\n"}},
		{"merge <(seq 2) | count", "2\n", []int{0, 0, 0}, nil},
		{"gen -n 2 | sink " + dir + "/s", "", []int{0, 0}, map[string]string{"s": "1\n2\n"}},
		{"gen -n 2 | sh -c 'cat'", "1\n2\n", []int{0, 0}, nil},
		{"gen | head -n 1", "1\n", []int{141, 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			r := runSetup(t, tt.spec, setup{isolate: true})
			if r.stdout != tt.stdout || !slices.Equal(codes(r.Result), tt.codes) || r.stderr != "" {
				t.Errorf("stdout %q, codes %v, stderr %q; want %q, %v, nothing", r.stdout, codes(r.Result), r.stderr, tt.stdout, tt.codes)
			}
			for i, s := range r.Statuses {
				if s.Pid == 0 {
					t.Errorf("stage %d ran inside gpipe", i+1)
				}
			}
			for name, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(got) != want {
					t.Errorf("%s holds %q (%v), want %q", name, got, err, want)
				}
			}
		})
	}
}

// TestIsolatedBuiltinFails: a builtin in a helper that fails says why on
// its stderr, status 1.
func TestIsolatedBuiltinFails(t *testing.T) {
	r := runSetup(t, "sink nodir/out", setup{isolate: true})
	if want := "gpipe: stage 1 (sink): open nodir/out: no such file or directory\n"; r.stderr != want || !slices.Equal(codes(r.Result), []int{1}) {
		t.Errorf("stderr %q, codes %v; want %q, [1]", r.stderr, codes(r.Result), want)
	}
}

// TestIsolatedBlockingRedirect: a builtin whose redirection opens a named
// FIFO runs in a helper, which opens it, so that waiting for the other
// side holds up no other stage.
func TestIsolatedBlockingRedirect(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, cmds, plan := prepareWith(t, "gen -n 3 > "+fifo+" | cat < "+fifo, setup{})
	plan.Close()
	for i, c := range cmds {
		if c.InProcess {
			t.Errorf("stage %d, a builtin opening a FIFO, placed inside gpipe", i+1)
		}
	}
	r := runSetup(t, "gen -n 3 > "+fifo+" | cat < "+fifo, setup{})
	if r.stdout != "1\n2\n3\n" || !slices.Equal(codes(r.Result), []int{0, 0}) || r.stderr != "" {
		t.Errorf("stdout %q, codes %v, stderr %q", r.stdout, codes(r.Result), r.stderr)
	}
}

// TestFIFOTransport: process substitutions become named FIFOs, which a
// helper opens for the stage on either side (builtin or program), or an
// in-process builtin opens by its path.
func TestFIFOTransport(t *testing.T) {
	r := runSetup(t, "merge <(gen -n 2) <(seq 3) | count", setup{fifoDir: true, isolate: true})
	if r.stdout != "5\n" || !slices.Equal(codes(r.Result), []int{0, 0, 0, 0}) || r.stderr != "" {
		t.Errorf("merge: stdout %q, codes %v, stderr %q", r.stdout, codes(r.Result), r.stderr)
	}
	// sink, inside gpipe, opens its output FIFO by path; count's helper
	// opens its input.
	r = runSetup(t, "gen -n 5 | sink >(count)", setup{fifoDir: true})
	if r.stdout != "5\n" || !slices.Equal(codes(r.Result), []int{0, 0, 0}) || r.stderr != "" {
		t.Errorf("sink: stdout %q, codes %v, stderr %q", r.stdout, codes(r.Result), r.stderr)
	}
	// A stage that ends without opening its FIFO: its writer sees a
	// broken pipe.
	r = runSetup(t, "true <(gen)", setup{fifoDir: true})
	if !slices.Equal(codes(r.Result), []int{0, 141}) || r.stderr != "" {
		t.Errorf("codes %v, stderr %q; want [0 141]", codes(r.Result), r.stderr)
	}
}

// TestFIFOInProcessReader: a builtin inside gpipe reading a named FIFO by
// its path reads what the writer writes.
func TestFIFOInProcessReader(t *testing.T) {
	r := runSetup(t, "merge <(seq 3)", setup{fifoDir: true})
	if r.stdout != "1\n2\n3\n" || !slices.Equal(codes(r.Result), []int{0, 0}) || r.stderr != "" {
		t.Errorf("stdout %q, codes %v, stderr %q; want 1 to 3, [0 0]", r.stdout, codes(r.Result), r.stderr)
	}
}
