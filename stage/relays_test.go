package stage

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// relayed parses the pipeline file src and adds the planner's tees.
func relayed(t *testing.T, src string) *parser.Graph {
	t.Helper()
	f, err := parser.ParseFile("f.gp", src, nil, parser.Config{})
	if err != nil {
		t.Fatalf("ParseFile(%q): %v", src, err)
	}
	if err := AddRelays(f.Graph); err != nil {
		t.Fatalf("AddRelays(%q): %v", src, err)
	}
	return f.Graph
}

// TestAddRelays checks the tees the planner adds where a pipeline file
// reads one output in several places, or gpipe's stdin: after the user's
// stages, in the order of their positions, the first reader in the
// source on the tee's stdout (unless gpipe's stdout has it), the others
// on paths.
func TestAddRelays(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      string
	}{
		// Three readers of one output: the labelled stage's own pipeline
		// and two references. The tee comes last; its first reader gets
		// its stdout, the others a path each.
		{"named stage read in 3 places", "errs: gen 10 | count\n@errs | sink\n@errs | head -n 1", `
1 gen 10
2 count
3 sink
4 head -n 1
5 tee /dev/fd/63 /dev/fd/62
5.1 → 2.0
1.1 → 5.0
5.63(/dev/fd/63) → 3.0
5.62(/dev/fd/62) → 4.0
order [1 5 2 3 4]`},
		// One of them gpipe's stdout: the tee's stdout is left to it.
		{"named stage read by @stdout too", "a: seq 3\n@a | @stdout\n@a | wc", `
1 seq 3
2 wc
3 tee /dev/fd/63
3.63(/dev/fd/63) → 2.0
1.1 → 3.0
order [1 3 2]`},
		{"@stdin fanned out", "@stdin | a\n@stdin | b\n@stdin | c: sort | @stdout", `
1 a
2 b
3 sort
4 tee /dev/fd/63 /dev/fd/62
4.1 → 1.0
4.63(/dev/fd/63) → 2.0
4.62(/dev/fd/62) → 3.0
order [4 1 2 3]`},
		{"fd 3 of one stage read twice", "a: x\n@a:3 | y\n@a:3 | z", `
1 x
2 y
3 z
4 tee /dev/fd/63
4.1 → 2.0
1.3 → 4.0
4.63(/dev/fd/63) → 3.0
order [1 4 2 3]`},
		// b's stdout has two readers, tee and paste: an added tee.
		{"references inside process substitutions", "j: paste <(@a) <(@b)\na: seq 3\nb: seq 4 | tee >(@j:3)", `
1 paste /dev/fd/63 /dev/fd/62
2 seq 3
3 seq 4
4 tee /dev/fd/63
5 tee /dev/fd/63
2.1 → 1.63(/dev/fd/63)
5.1 → 1.62(/dev/fd/62)
3.1 → 5.0
5.63(/dev/fd/63) → 4.0
4.63(/dev/fd/63) → 1.3
order [2 3 5 4 1]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := relayed(t, tt.src)
			if got, want := strings.TrimSpace(g.Topology()), strings.TrimSpace(tt.want); got != want {
				t.Errorf("%q:\n%s\nwant:\n%s", tt.src, got, want)
			}
		})
	}
}

// TestAddRelaysTee checks the tee itself: marked as added, numbered after
// the user's stages, positioned at the stage it copies, its edges where
// the readers' were; and the stdin tee's, inside the source.
func TestAddRelaysTee(t *testing.T) {
	g := relayed(t, "errs: gen 10 | count\n@errs | sink\n@errs | head -n 1")
	for _, st := range g.Stages[:4] {
		if st.Added != "" {
			t.Errorf("%s: Added = %q", st.Name(), st.Added)
		}
	}
	tee := g.Stages[len(g.Stages)-1]
	if tee.ID != 4 || tee.Added != "copies stdout of @errs to its 3 readers" || tee.Pos != (parser.Pos{Line: 1, Col: 1}) || tee.Parent != nil {
		t.Errorf("added stage %+v", tee)
	}
	if !reflect.DeepEqual(tee.Args, []string{"tee", "/dev/fd/63", "/dev/fd/62"}) {
		t.Errorf("added tee args %q", tee.Args)
	}
	var fromGen, fromTee []parser.Edge
	for _, e := range g.Edges {
		if e.From.Stage == 0 {
			fromGen = append(fromGen, *e)
		}
		if e.From.Stage == tee.ID {
			fromTee = append(fromTee, *e)
		}
	}
	if len(fromGen) != 1 || fromGen[0].To != (parser.Port{Stage: tee.ID, FD: 0}) || fromGen[0].Pos != (parser.Pos{Line: 1, Col: 14}) {
		t.Errorf("edges from gen: %+v", fromGen)
	}
	want := []parser.Edge{
		{From: parser.Port{Stage: 4, FD: 1}, To: parser.Port{Stage: 1, FD: 0}, Pos: parser.Pos{Line: 1, Col: 14}},
		{From: parser.Port{Stage: 4, FD: 63, Name: "/dev/fd/63"}, To: parser.Port{Stage: 2, FD: 0}, Pos: parser.Pos{Line: 2, Col: 7}},
		{From: parser.Port{Stage: 4, FD: 62, Name: "/dev/fd/62"}, To: parser.Port{Stage: 3, FD: 0}, Pos: parser.Pos{Line: 3, Col: 7}},
	}
	if !reflect.DeepEqual(fromTee, want) {
		t.Errorf("edges from the tee:\n%+v\nwant\n%+v", fromTee, want)
	}

	g = relayed(t, "@stdin | a\n@stdin | b")
	tee = g.Stages[2]
	if !reflect.DeepEqual(tee.Args, []string{"tee", "/dev/fd/63"}) || tee.Added != "copies gpipe's stdin to its 2 readers" {
		t.Errorf("added stdin tee %+v", tee)
	}
	if tee.Pos.Line < 1 || tee.Pos.Col < 1 {
		t.Errorf("added stdin tee at %v, outside the source", tee.Pos)
	}
	for _, e := range g.Edges {
		if e.Pos.Line < 1 || e.Pos.Col < 1 {
			t.Errorf("edge %v → %v of the stdin tee at %v, outside the source", e.From, e.To, e.Pos)
		}
	}
	if g.StdoutFrom != nil || g.StdinReaders != nil {
		t.Errorf("left for a relay after AddRelays: %+v %+v", g.StdoutFrom, g.StdinReaders)
	}
}

// TestAddRelaysTooMany: a tee has descriptors 63 down to 10 and its
// stdout; more readers are an error at the stage read.
func TestAddRelaysTooMany(t *testing.T) {
	f, err := parser.ParseFile("f.gp", "e: seq 3\n"+strings.Repeat("@e | c\n", 56), nil, parser.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = AddRelays(f.Graph)
	if want := "f.gp:1:1: one output read in 56 places: gpipe copies it to at most 55"; err == nil || err.Error() != want {
		t.Errorf("AddRelays: %v, want %s", err, want)
	}
}

// TestAddRelaysFIFO: a process substitution marked @fifo whose port is
// read twice: the edge into the tee keeps the port and the mark, so that
// it is the named FIFO; the tee writes its outputs by descriptor.
func TestAddRelaysFIFO(t *testing.T) {
	g := relayed(t, "a: tee >(@fifo | x)\n@a:63 | y")
	plumbing.NameFIFOs(g, "D", false)
	var named []string
	for _, e := range g.Edges {
		if e.Transport == parser.TransportFIFO {
			named = append(named, e.From.String())
		}
	}
	if want := []string{"D/1"}; !reflect.DeepEqual(named, want) || !reflect.DeepEqual(g.Stages[0].Args, []string{"tee", "D/1"}) {
		t.Errorf("FIFO edges from %q, tee args %q:\n%s", named, g.Stages[0].Args, g.Topology())
	}
}
