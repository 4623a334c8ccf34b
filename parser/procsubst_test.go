package parser

import (
	"strings"
	"testing"
)

// topology is g as one line per stage ("ID args [parent P] [shares FD of
// S]") and one per edge ("FROM.FD → TO.FD"), with the topological order.
// topology is g.Topology(), by its old name.
func topology(g *Graph) string { return g.Topology() }

// TestProcSubst checks the graphs process substitutions make: stages in
// source order, an edge per substitution at descriptors 63, 62, … of the
// stage whose word holds it, the paths bash would print, the parents'
// stdin and stdout shared as bash's forks inherit them, and a
// topological order.
func TestProcSubst(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"paste <(seq 3) <(seq 4 6)", `
1 paste /dev/fd/63 /dev/fd/62
2 seq 3 [in 1]
3 seq 4 6 [in 1]
2.1 → 1.63(/dev/fd/63)
3.1 → 1.62(/dev/fd/62)
order [2 3 1]`},
		// wc inherits tee's stdout, the pipe to tail; grep's is its own.
		{"seq 9 | tee >(grep 7 | wc -l) >(wc -c > f) | tail -1", `
1 seq 9
2 tee /dev/fd/63 /dev/fd/62
3 grep 7 [in 2]
4 wc -l [in 2] [fd 1 = 2.1]
5 wc -c [in 2]
6 tail -1
1.1 → 2.0
2.63(/dev/fd/63) → 3.0
3.1 → 4.0
2.62(/dev/fd/62) → 5.0
2.1 → 6.0
order [1 2 3 4 5 6]`},
		// The first stage of <(…) reads its parent's stdin, as in bash.
		{"seq 3 | paste - <(cat)", `
1 seq 3
2 paste - /dev/fd/63
3 cat [in 2] [fd 0 = 2.0]
1.1 → 2.0
3.1 → 2.63(/dev/fd/63)
order [1 3 2]`},
		// Nested: the inner stage's own descriptors start at 63 again,
		// and d shares its grandparent's stdin.
		{"a | b <(c <(d)) >(e >(f))", `
1 a
2 b /dev/fd/63 /dev/fd/62
3 c /dev/fd/63 [in 2] [fd 0 = 2.0]
4 d [in 3] [fd 0 = 2.0]
5 e /dev/fd/63 [in 2]
6 f [in 5]
1.1 → 2.0
3.1 → 2.63(/dev/fd/63)
4.1 → 3.63(/dev/fd/63)
2.62(/dev/fd/62) → 5.0
5.63(/dev/fd/63) → 6.0
order [1 4 3 2 5 6]`},
		// Redirections come after the words; inside a word, the path is
		// part of it; brace expansion makes one substitution per copy.
		{"cmd --in=<(x) < <(y) {a,b}<(z)", `
1 cmd --in=/dev/fd/63 a/dev/fd/62 b/dev/fd/61
2 x [in 1]
3 y [in 1]
4 z [in 1]
5 z [in 1]
2.1 → 1.63(/dev/fd/63)
3.1 → 1.60(/dev/fd/60)
4.1 → 1.62(/dev/fd/62)
5.1 → 1.61(/dev/fd/61)
order [2 3 4 5 1]`},
		// A stage that replaces the inherited descriptor first does not
		// share it; one that copies it first does.
		{"a | tee >(b > f) >(c 2>&1 > g) | d", `
1 a
2 tee /dev/fd/63 /dev/fd/62
3 b [in 2]
4 c [in 2] [fd 1 = 2.1]
5 d
1.1 → 2.0
2.63(/dev/fd/63) → 3.0
2.62(/dev/fd/62) → 4.0
2.1 → 5.0
order [1 2 3 4 5]`},
	} {
		g, err := Parse("spec", tt.src, Config{Env: testEnv})
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if got, want := strings.TrimSpace(topology(g)), strings.TrimSpace(tt.want); got != want {
			t.Errorf("Parse(%q):\n%s\nwant:\n%s", tt.src, got, want)
		}
	}
}
