package plumbing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gpipe/gpipe/parser"
)

// TestNameFIFOs: the planner names a FIFO for each process substitution
// marked "@fifo" (every one under --transport fifo), puts its path in the
// stage's words in place of /dev/fd/N. (The ports of the tees gpipe adds
// stay descriptors: stage's TestAddRelaysFIFO.)
func TestNameFIFOs(t *testing.T) {
	for _, tt := range []struct {
		src  string
		file bool
		all  bool
		want string
	}{
		{"seq 9 | tee >(@fifo | wc -l) >(wc -c)", true, false, `
2 tee D/1 /dev/fd/62
2.63(D/1) → 3.0 fifo
2.62(/dev/fd/62) → 4.0 auto`},
		{"paste <(seq 3 | @fifo) <(seq 4 | @pipe) -\ncat <(seq 5 | @fifo)", true, false, `
1 paste D/1 /dev/fd/62 -
4 cat D/2
2.1 → 1.63(D/1) fifo
3.1 → 1.62(/dev/fd/62) pipe
5.1 → 4.63(D/2) fifo`},
		{"paste <(seq 3) <(seq 4)", false, true, `
1 paste D/1 D/2
2.1 → 1.63(D/1) fifo
3.1 → 1.62(D/2) fifo`},
		// A word that holds the path, a redirection from it, an
		// assignment of it; /dev/fd/630 is another path.
		{"X=<(seq 1) cmp --in=<(seq 2) /dev/fd/630 < <(seq 3)", false, true, `
1 X=D/1 cmp --in=D/2 /dev/fd/630 <D/3
2.1 → 1.61(D/1) fifo
3.1 → 1.63(D/2) fifo
4.1 → 1.62(D/3) fifo`},
	} {
		var (
			g   *parser.Graph
			err error
		)
		if tt.file {
			var f *parser.File
			f, err = parser.ParseFile("f.gp", tt.src, nil, parser.Config{})
			if f != nil {
				g = f.Graph
			}
		} else {
			g, err = parser.Parse("spec", tt.src, parser.Config{})
		}
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		NameFIFOs(g, "D", tt.all)
		got := namedFIFOs(g)
		if want := strings.TrimSpace(tt.want); got != want {
			t.Errorf("%q:\n%s\nwant:\n%s", tt.src, got, want)
		}
	}
}

// namedFIFOs lists the stages that have a named port (their words), then
// the edges with one and their transports.
func namedFIFOs(g *parser.Graph) string {
	var lines []string
	named := map[int]bool{}
	for _, e := range g.Edges {
		if e.From.Name != "" {
			named[e.From.Stage] = true
		}
		if e.To.Name != "" {
			named[e.To.Stage] = true
		}
	}
	for i, st := range g.Stages {
		if !named[i] {
			continue
		}
		words := append(append([]string(nil), st.Env...), st.Args...)
		for _, r := range st.Redirs {
			words = append(words, "<"+r.Path)
		}
		lines = append(lines, fmt.Sprintf("%d %s", i+1, strings.Join(words, " ")))
	}
	port := func(p parser.Port) string {
		s := fmt.Sprintf("%d.%d", p.Stage+1, p.FD)
		if p.Name != "" {
			s += "(" + p.Name + ")"
		}
		return s
	}
	for _, e := range g.Edges {
		if e.From.Name != "" || e.To.Name != "" {
			lines = append(lines, fmt.Sprintf("%s → %s %v", port(e.From), port(e.To), e.Transport))
		}
	}
	return strings.Join(lines, "\n")
}
