package stage

import (
	"errors"
	"strings"
	"testing"

	"github.com/gpipe/gpipe/parser"
)

// TestExpandPar checks the nodes a par stage expands into: the stage
// itself as the dealer, its copies numbered within it (listed last), a
// merge where its output went, redirections and shared descriptors
// shared out among them.
func TestExpandPar(t *testing.T) {
	for _, tt := range []struct {
		name, spec string
		want       string
	}{
		{"in a chain", "seq 9 | par -j 2 -- grep 1 | wc -l", `
1 seq 9
2 par -j 2 -- grep 1
3 wc -l
4 merge --par /dev/fd/63 /dev/fd/62
2.1 grep 1
2.2 grep 1
1.1 → 2.0
2.63(/dev/fd/63) → 2.1.0
2.1.1 → 4.63(/dev/fd/63)
2.62(/dev/fd/62) → 2.2.0
2.2.1 → 4.62(/dev/fd/62)
4.1 → 3.0
order [1 2 2.1 2.2 4 3]`},
		{"last, with redirections", "par -j 1 --block 1MiB -- tr a b < in > out 2>> err", `
1 par -j 1 --block 1048576 -- tr a b
2 merge --par /dev/fd/63
1.1 tr a b
1.63(/dev/fd/63) → 1.1.0
1.1.1 → 2.63(/dev/fd/63)
order [1 1.1 2]`},
		{"in order", "par -k -j 2 -- grep 1", `
1 par -j 2 -k -- grep 1
2 merge --frames /dev/fd/63 /dev/fd/62
1.1 grep 1
1.2 grep 1
1.63(/dev/fd/63) → 1.1.0
1.1.1 → 2.63(/dev/fd/63)
1.62(/dev/fd/62) → 1.2.0
1.2.1 → 2.62(/dev/fd/62)
order [1 1.1 1.2 2]`},
		{"with a header", "par --header 2 -j 1 -- cut -c1", `
1 par -j 1 --header 2 -- cut -c1
2 merge --par --first /dev/fd/62 /dev/fd/63
1.1 cut -c1
1.63(/dev/fd/63) → 1.1.0
1.1.1 → 2.63(/dev/fd/63)
1.62(/dev/fd/62) → 2.62(/dev/fd/62)
order [1 1.1 2]`},
		{"in a process substitution", "cat <(seq 3 | par -j 2 -- cat)", `
1 cat /dev/fd/63
2 seq 3 [in 1]
3 par -j 2 -- cat [in 1]
4 merge --par /dev/fd/63 /dev/fd/62 [in 1]
3.1 cat [in 1]
3.2 cat [in 1]
4.1 → 1.63(/dev/fd/63)
2.1 → 3.0
3.63(/dev/fd/63) → 3.1.0
3.1.1 → 4.63(/dev/fd/63)
3.62(/dev/fd/62) → 3.2.0
3.2.1 → 4.62(/dev/fd/62)
order [2 3 3.1 3.2 4 1]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := parser.Parse("spec", tt.spec, parser.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := ExpandPar(g, 0); err != nil {
				t.Fatal(err)
			}
			if got := "\n" + g.Topology(); strings.TrimSpace(got) != strings.TrimSpace(tt.want) {
				t.Errorf("got:%s\nwant:%s", got, tt.want)
			}
			for _, st := range g.Stages {
				switch {
				case st.CopyOf != nil && len(st.Redirs) > 0:
					if st.Redirs[0].FD != 2 {
						t.Errorf("%s has redirection of fd %d", st.Name(), st.Redirs[0].FD)
					}
				case st.Args[0] == "par" && len(st.Redirs) > 0 && st.Redirs[0].FD != 0,
					st.Args[0] == "merge" && len(st.Redirs) > 0 && st.Redirs[0].FD != 1:
					t.Errorf("%s has redirection of fd %d", st.Name(), st.Redirs[0].FD)
				}
			}
		})
	}
}

// TestExpandParRefuses: what par cannot share out among its copies is an
// error naming the par stage, before anything runs.
func TestExpandParRefuses(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"seq 3 | par -j 2 -- cat 2> err", "spec:1:25: stage 2 (par): par: 2> err: each copy would write over the others' (use 2>> to append)"},
		{"par -j 2 -- diff - <(seq 2)", "spec:1:22: stage 1 (par): par: a process substitution in the command of par's copies: each copy would need its own (run the command through sh -c)"},
		{"par -j 0 -- cat", "stage 1 (par): par: -j 0: want 1 to 54 copies"},
		{"par -j 2", "stage 1 (par): par: want a COMMAND to run in copies"},
		{"seq 3 | par --part -- cat", "spec:1:7: stage 2 (par): par: --part: its input comes from stage 1 (seq), not a file: drop --part, or give par the file (par --part -- CMD < FILE)"},
	} {
		g, err := parser.Parse("spec", tt.spec, parser.Config{})
		if err != nil {
			t.Fatal(err)
		}
		err = ExpandPar(g, 0)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %s", tt.spec, err, tt.want)
		}
		var pe *parser.Error
		var be *BuiltinError
		if !errors.As(err, &pe) && !errors.As(err, &be) {
			t.Errorf("%s: %T, want a *parser.Error or a *BuiltinError", tt.spec, err)
		}
	}
}

// TestUsableCPUs: at least one, and no more than the machine has.
func TestUsableCPUs(t *testing.T) {
	if n := UsableCPUs(); n < 1 {
		t.Errorf("UsableCPUs() = %d", n)
	}
}
