package parser

import "testing"

// TestCheck is the graph check's table: what it refuses, with the exact
// message, and the order it computes for what it accepts.
func TestCheck(t *testing.T) {
	stages := func(n int) []*Stage {
		var out []*Stage
		for i := range n {
			out = append(out, &Stage{ID: i, Pos: Pos{1, 1 + 4*i}, Args: []string{string(rune('a' + i))}})
		}
		return out
	}
	e := func(from, fromFD, to, toFD int) *Edge {
		return &Edge{From: Port{Stage: from, FD: fromFD}, To: Port{Stage: to, FD: toFD}, Pos: Pos{2, 1 + from}}
	}
	for _, tt := range []struct {
		name   string
		n      int
		edges  []*Edge
		shares map[int]Inherit
		want   string // the error, or the order
	}{
		{"chain", 3, []*Edge{e(0, 1, 1, 0), e(1, 1, 2, 0)}, nil, "order [0 1 2]"},
		{"fan-in", 3, []*Edge{e(1, 1, 0, 63), e(2, 1, 0, 62)}, nil, "order [1 2 0]"},
		{"diamond", 4, []*Edge{e(0, 1, 1, 0), e(0, 3, 2, 0), e(1, 1, 3, 0), e(2, 1, 3, 4)}, nil, "order [0 1 2 3]"},
		{"unordered stages keep source order", 3, nil, nil, "order [0 1 2]"},
		{"cycle", 3, []*Edge{e(0, 1, 1, 0), e(1, 1, 2, 0), e(2, 1, 0, 0)}, nil,
			"test:2:1: cycle: stage 1 (a) → stage 2 (b) → stage 3 (c) → stage 1 (a)"},
		{"cycle downstream of a stage", 3, []*Edge{e(0, 1, 1, 0), e(1, 1, 2, 0), e(2, 1, 1, 3)}, nil,
			"test:2:2: cycle: stage 2 (b) → stage 3 (c) → stage 2 (b)"},
		{"self loop", 2, []*Edge{e(1, 1, 1, 0)}, nil, "test:2:2: cycle: stage 2 (b) feeds itself"},
		// A fan-out: the planner copies it (stage.AddRelays).
		{"output read twice", 3, []*Edge{e(0, 1, 1, 0), e(0, 1, 2, 0)}, nil, "order [0 1 2]"},
		{"a port in and out", 3, []*Edge{e(0, 1, 1, 0), e(1, 0, 2, 0)}, nil,
			"test:2:2: stage 2 (b): stdin is wired twice, by edge 1 and edge 2"},
		{"input wired twice", 3, []*Edge{e(0, 1, 2, 0), e(1, 1, 2, 0)}, nil,
			"test:2:2: stage 3 (c): stdin is wired twice, by edge 1 and edge 2"},
		{"dangling", 2, []*Edge{e(0, 1, 4, 0)}, nil, "test:2:1: edge 1: stage 5 does not exist (the graph has 2)"},
		{"share of nothing", 2, []*Edge{e(0, 1, 1, 0)}, map[int]Inherit{1: {FD: 1, From: Port{Stage: 0, FD: 0}}},
			"test:1:5: stage 2 (b): shares stdin of stage 1, which no edge wires"},
	} {
		g := &Graph{Name: "test", Stages: stages(tt.n), Edges: tt.edges}
		for s, in := range tt.shares {
			g.Stages[s].Inherits = append(g.Stages[s].Inherits, in)
		}
		got := ""
		if err := Check(g); err != nil {
			got = err.Error()
		} else {
			got = "order " + fmtInts(g.Order)
		}
		if got != tt.want {
			t.Errorf("%s: Check = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func fmtInts(xs []int) string {
	s := "["
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += string(rune('0' + x))
	}
	return s + "]"
}
