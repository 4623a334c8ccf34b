package stage

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// parse parses spec with the environment env (and no FIFOs unless
// fifoDir is set: --transport fifo).
func parse(t *testing.T, spec string, env []string, fifoDir bool) *parser.Graph {
	t.Helper()
	g, err := parser.Parse("spec", spec, parser.Config{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if fifoDir {
		plumbing.NameFIFOs(g, filepath.Join(t.TempDir(), "fifos"), true)
	}
	return g
}

// TestResolveTable: what runs each stage, decided before anything starts.
func TestResolveTable(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tool, head := write("tool", 0o755), write("head", 0o755)
	write("plain", 0o644)
	reg := builtins.Default()
	_, headUsage := reg["head"].Parse([]string{"-q"})
	if headUsage == nil {
		t.Fatal("the builtin head takes -q")
	}
	env := []string{"PATH=" + dir, "HOME=/h"}
	type want struct {
		path, builtin, note string
		args                []string
		noInput, operands   bool
		env                 []string
	}
	tests := []struct {
		spec string
		want []want
	}{
		{"gen -n 1 | tee x | tool a", []want{
			{builtin: "gen", args: []string{"gen", "-n", "1"}, noInput: true, env: env},
			{builtin: "tee", args: []string{"tee", "x"}, operands: true, env: env},
			{path: tool, args: []string{"tool", "a"}, env: env},
		}},
		{"head -q f", []want{
			{path: head, args: []string{"head", "-q", "f"}, env: env,
				note: "the builtin head does not take these arguments (" + headUsage.Error() + "); running " + head},
		}},
		{"command head -n 1 | " + tool, []want{
			{path: head, args: []string{"head", "-n", "1"}, env: env},
			{path: tool, args: []string{tool}, env: env},
		}},
		{"X=1 count -l | > out", []want{
			{builtin: "count", args: []string{"count", "-l"}, env: []string{"PATH=" + dir, "HOME=/h", "X=1"}},
			{env: env},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			cmds, err := Resolve(parse(t, tt.spec, env, false), env, reg)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				c := cmds[i]
				if c.Path != w.path || c.Builtin != w.builtin || c.Note != w.note || !slices.Equal(c.Args, w.args) ||
					c.NoInput != w.noInput || c.WritesOperands != w.operands || !slices.Equal(c.Env, w.env) || (c.run != nil) != (w.builtin != "") {
					t.Errorf("stage %d: %+v\nwant %+v", i+1, c, w)
				}
			}
		})
	}
}

// TestResolveErrors: a program that cannot run is a *LookupError, a
// builtin with arguments it does not take and no program of its name a
// *BuiltinError, each naming the stage.
func TestResolveErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + dir}
	reg := builtins.Default()
	_, usage := reg["head"].Parse([]string{"--bogus"})
	tests := []struct {
		spec  string
		text  string
		id    int
		stage string
		code  int // 0: a *BuiltinError
	}{
		{"gen | nosuch", "nosuch: command not found", 1, "stage 2 (nosuch)", 127},
		{"plain", "plain: Permission denied", 0, "stage 1 (plain)", 126},
		{"command gen", "gen: command not found", 0, "stage 1 (command)", 127},
		{dir + "/missing", dir + "/missing: No such file or directory", 0, "stage 1 (" + dir + "/missing)", 127},
		{dir, dir + ": Is a directory", 0, "stage 1 (" + dir + ")", 126},
		{"gen | head --bogus", "stage 2 (head): " + usage.Error(), 1, "stage 2 (head)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := Resolve(parse(t, tt.spec, env, false), env, reg)
			if err == nil || err.Error() != tt.text {
				t.Fatalf("error %v, want %q", err, tt.text)
			}
			var le *LookupError
			var be *BuiltinError
			switch {
			case tt.code == 0:
				var ue *builtins.UsageError
				if !errors.As(err, &be) || be.ID != tt.id || be.Stage != tt.stage || !errors.As(err, &ue) || ue.Error() != usage.Error() {
					t.Errorf("%#v: want a *BuiltinError of %s (%d) wrapping the usage", err, tt.stage, tt.id)
				}
			case !errors.As(err, &le) || le.ID != tt.id || le.Stage != tt.stage || le.Code != tt.code:
				t.Errorf("%#v: want a *LookupError of %s (%d), code %d", err, tt.stage, tt.id, tt.code)
			}
		})
	}
}

// TestPlace: where each builtin runs; inside gpipe unless isolated, or
// opening a FIFO (a redirection's, or its stdin or stdout as a named
// FIFO), or on an edge asking for shm, or reading gpipe's stdin when that
// is a terminal.
func TestPlace(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		spec              string
		isolate, ttyStdin bool
		fifoDir, shm      bool
		want              []bool
	}{
		{"builtins", "gen | cat | count", false, false, false, false, []bool{true, true, true}},
		{"a program", "gen | sh -c cat | count", false, false, false, false, []bool{true, false, true}},
		{"isolated", "gen | cat | count", true, false, false, false, []bool{false, false, false}},
		{"tty stdin", "cat | count", false, true, false, false, []bool{false, true}},
		{"tty stdin, not read", "gen | cat", false, true, false, false, []bool{true, true}},
		{"tty stdin, redirected", "cat < /dev/null", false, true, false, false, []bool{true}},
		{"tty stdin, substitution", "merge <(cat)", false, true, false, false, []bool{false, false}},
		{"a FIFO redirection", "cat < " + fifo + " | count", false, false, false, false, []bool{false, true}},
		{"a FIFO to read", "merge <(gen -n 1)", false, false, true, false, []bool{true, false}},
		{"a FIFO to write", "gen | sink >(count)", false, false, true, false, []bool{true, true, false}},
		{"shm", "gen | cat | count", false, false, false, true, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := parse(t, tt.spec, os.Environ(), tt.fifoDir)
			if tt.shm {
				g.Edges[0].Transport = parser.TransportShm
			}
			cmds, err := Resolve(g, os.Environ(), builtins.Default())
			if err != nil {
				t.Fatal(err)
			}
			Place(g, cmds, tt.isolate, tt.ttyStdin)
			var got []bool
			for _, c := range cmds {
				got = append(got, c.InProcess)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("inside gpipe: %v, want %v", got, tt.want)
			}
		})
	}
}

// TestInfos: what plumbing is told of each stage.
func TestInfos(t *testing.T) {
	g := parse(t, "gen -n 1 | tr a b 3< /dev/null 2>&1 | cat < /dev/fd/3 | > out", os.Environ(), false)
	cmds, err := Resolve(g, os.Environ(), builtins.Default())
	if err != nil {
		t.Fatal(err)
	}
	Place(g, cmds, false, false)
	want := []plumbing.StageInfo{
		{Name: "gen", Rings: true, InProcess: true},
		{Name: "tr", Why: "is an external program", Touched: map[int]string{3: "redirects its descriptor 3", 2: "redirects its descriptor 2", 1: "copies its stdout"}},
		{Name: "cat", Rings: true, InProcess: true, Touched: map[int]string{0: "redirects its stdin", 3: "opens its descriptor 3 by path"}},
		{Name: "", Why: "runs no program", Touched: map[int]string{1: "redirects its stdout"}},
	}
	got := Infos(g, cmds)
	for i := range want {
		w, g := want[i], got[i]
		if g.Name != w.Name || g.Rings != w.Rings || g.InProcess != w.InProcess || g.Why != w.Why || !maps.Equal(g.Touched, w.Touched) {
			t.Errorf("stage %d: %+v\nwant %+v", i+1, g, w)
		}
	}
}
