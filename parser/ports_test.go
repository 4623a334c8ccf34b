package parser

import (
	"reflect"
	"testing"
)

// TestDesc: what each descriptor of each stage is, from the index Check
// made: an edge's end, a copy of a parent's port, gpipe's own, and
// whether a redirection replaces it.
func TestDesc(t *testing.T) {
	// seq writes to tee; tee's >(wc -l) shares tee's stdout (bash forks
	// it from tee); cat reads tee and redirects its stdout.
	g, err := Parse("spec", "seq 3 | tee >(wc -l) | cat > out 2>&1", Config{})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, st := range g.Stages {
		names = append(names, st.Args[0])
	}
	if want := []string{"seq", "tee", "wc", "cat"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("stages %q, want %q", names, want)
	}
	edge := func(from, fromFD, to, toFD int) int {
		for k, e := range g.Edges {
			if e.From.Stage == from && e.From.FD == fromFD && e.To.Stage == to && e.To.FD == toFD {
				return k
			}
		}
		t.Fatalf("no edge %d.%d → %d.%d", from+1, fromFD, to+1, toFD)
		return -1
	}
	seqTee, teeWc, teeCat := edge(0, 1, 1, 0), edge(1, 63, 2, 0), edge(1, 1, 3, 0)
	teeOut := Port{Stage: 1, FD: 1}
	for _, tt := range []struct {
		stage, fd int
		want      Desc
	}{
		{0, 0, Desc{Edge: -1, Own: true}},
		{0, 1, Desc{Edge: seqTee}},
		{0, 2, Desc{Edge: -1, Own: true}},
		{1, 0, Desc{Edge: seqTee}},
		{1, 63, Desc{Edge: teeWc}},
		{1, 1, Desc{Edge: teeCat}},
		{2, 0, Desc{Edge: teeWc}},
		{2, 1, Desc{Edge: -1, Inherits: &teeOut}},
		{3, 0, Desc{Edge: teeCat}},
		{3, 1, Desc{Edge: -1, Own: true, Redirected: true}},
		{3, 2, Desc{Edge: -1, Own: true, Redirected: true}},
		{3, 5, Desc{Edge: -1}},
	} {
		if got := g.Desc(tt.stage, tt.fd); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("stage %d fd %d: %+v, want %+v", tt.stage+1, tt.fd, got, tt.want)
		}
	}
	if got := g.Out(1); !reflect.DeepEqual(got, []int{teeWc, teeCat}) && !reflect.DeepEqual(got, []int{teeCat, teeWc}) {
		t.Errorf("tee's edges out %v", got)
	}
	if got := g.In(3); !reflect.DeepEqual(got, []int{teeCat}) {
		t.Errorf("cat's edges in %v", got)
	}
	if !g.Shared(teeOut) || g.Shared(Port{Stage: 0, FD: 1}) {
		t.Errorf("shared: tee's stdout %v, seq's %v", g.Shared(teeOut), g.Shared(Port{Stage: 0, FD: 1}))
	}
	// A graph Check has not seen is indexed on demand, the same.
	h := &Graph{Stages: g.Stages, Edges: g.Edges}
	if k, ok := h.EdgeAt(Port{Stage: 3, FD: 0}); !ok || k != teeCat {
		t.Errorf("unchecked graph: cat's stdin is edge %d, %v", k, ok)
	}
}
