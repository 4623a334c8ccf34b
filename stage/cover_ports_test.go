package stage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
