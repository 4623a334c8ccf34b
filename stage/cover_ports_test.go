package stage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestInProcessPorts: a builtin inside gpipe opens its FILE operands
// through its port files: a process substitution's pipe is handed over,
// a ring is taken, a descriptor of its own that a redirection opened is
// opened anew, a standard one it names too; a port the wrong way round,
// or a descriptor it does not have, fails as a program's open would.
func TestInProcessPorts(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, []byte("x\ny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		spec           string
		su             setup
		stdout, stderr string
		codes          []int
		files          map[string]string
	}{
		{"pipe port out", "gen -n 3 | tee >(sh -c 'cat > " + dir + "/p') | count", setup{},
			"3\n", "", []int{0, 0, 0, 0}, map[string]string{"p": "1\n2\n3\n"}},
		{"pipe and ring ports in", "merge <(seq 2) <(gen -n 3) | count", setup{},
			"5\n", "", []int{0, 0, 0, 0}, nil},
		{"pipe port twice", "merge <(seq 2) /dev/fd/63 | count", setup{},
			"2\n", "", []int{0, 0, 0}, nil},
		{"pipe port twice, in a helper", "merge <(seq 2) /dev/fd/63 | count", setup{isolate: true},
			"2\n", "", []int{0, 0, 0}, nil},
		{"shm ring port in", "merge <(cat) <(gen -n 1) | count", setup{ttyStdin: true, stdin: open(t, in)},
			"3\n", "", []int{0, 0, 0, 0}, nil},
		{"files by name", "merge /dev/null " + in + " | count", setup{},
			"2\n", "", []int{0, 0}, nil},
		{"own descriptor opened anew", "gen -n 2 | tee /dev/fd/3 3> " + dir + "/three", setup{},
			"1\n2\n", "", []int{0, 0}, map[string]string{"three": "1\n2\n"}},
		{"standard descriptor named", "gen -n 2 | tee /dev/stderr", setup{},
			"1\n2\n", "1\n2\n", []int{0, 0}, nil},
		{"input port to write", "tee <(gen)", setup{},
			"", "gpipe: stage 1 (tee): /dev/fd/63: open /dev/fd/63: permission denied\n", []int{1, 141}, nil},
		{"no such descriptor", "gen -n 1 | tee /dev/fd/57", setup{},
			"1\n", "gpipe: stage 2 (tee): /dev/fd/57: open /dev/fd/57: no such file or directory\n", []int{0, 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runSetup(t, tt.spec, tt.su)
			if r.stdout != tt.stdout || r.stderr != tt.stderr || !slices.Equal(codes(r.Result), tt.codes) {
				t.Errorf("stdout %q, stderr %q, codes %v; want %q, %q, %v", r.stdout, r.stderr, codes(r.Result), tt.stdout, tt.stderr, tt.codes)
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

// open opens name for reading, closed when the test ends.
func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestInProcessShmPort: a builtin inside gpipe writes to a shm ring port
// whose reader runs in a helper process (it opens a FIFO by a
// redirection, which this test writes).
func TestInProcessShmPort(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	go func() {
		// The helper's open of the FIFO waits for this writer, which
		// closes it at once; count's descriptor 3 then reads nothing.
		for deadline := time.Now().Add(scaled(20 * time.Second)); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
				return
			}
		}
	}()
	spec := "gen -n 3 | tee >(count 3< " + fifo + " > " + dir + "/c)"
	_, cmds, plan := prepareWith(t, spec, setup{})
	plan.Close()
	if !cmds[1].InProcess || cmds[2].InProcess {
		t.Fatalf("tee inside gpipe %v, count %v; want tee inside, count in a helper", cmds[1].InProcess, cmds[2].InProcess)
	}
	r := runSetup(t, spec, setup{})
	got, err := os.ReadFile(filepath.Join(dir, "c"))
	if r.stdout != "1\n2\n3\n" || r.stderr != "" || !slices.Equal(codes(r.Result), []int{0, 0, 0}) || err != nil || string(got) != "3\n" {
		t.Errorf("stdout %q, stderr %q, codes %v, count wrote %q (%v)", r.stdout, r.stderr, codes(r.Result), got, err)
	}
}
