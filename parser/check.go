package parser

import (
	"fmt"
	"strings"
)

// Check verifies that g is a graph gpipe can run, and computes g.Order:
//   - every edge joins two stages of g;
//   - every input port is wired once, and no port is both an input and
//     an output: a stage's descriptor is fed by at most one edge. An
//     output port may feed several edges (a pipeline file's fan-out),
//     which the planner copies with a tee (stage.AddRelays) before any
//     edge is made;
//   - every inherited descriptor copies a port an edge wires;
//   - there is no cycle.
//
// Parse checks what it builds; a graph assembled another way (a pipeline
// file's named stages) must be checked before plumbing sees it. A problem
// is an *Error at the edge concerned.
func Check(g *Graph) error {
	n := len(g.Stages)
	errAt := func(e *Edge, format string, args ...any) error {
		return &Error{Name: g.Name, Pos: e.Pos, Text: fmt.Sprintf(format, args...)}
	}
	for i, st := range g.Stages {
		if st.ID != i {
			return &Error{Name: g.Name, Pos: st.Pos, Text: fmt.Sprintf("stage %d is numbered %d", i+1, st.ID+1)}
		}
	}
	type key struct{ stage, fd int }
	wiredBy := map[key]int{}
	for i, e := range g.Edges {
		for _, p := range []Port{e.From, e.To} {
			if p.Stage < 0 || p.Stage >= n {
				return errAt(e, "edge %d: stage %d does not exist (the graph has %d)", i+1, p.Stage+1, n)
			}
			if p.FD < 0 {
				return errAt(e, "edge %d: %s has no descriptor %d", i+1, g.Stages[p.Stage].Name(), p.FD)
			}
		}
		if e.From.Stage == e.To.Stage {
			return errAt(e, "cycle: %s feeds itself", g.Stages[e.From.Stage].Name())
		}
		if j, ok := wiredBy[key{e.To.Stage, e.To.FD}]; ok {
			return errAt(e, "%s: %s is wired twice, by edge %d and edge %d", g.Stages[e.To.Stage].Name(), e.To, j+1, i+1)
		}
		wiredBy[key{e.To.Stage, e.To.FD}] = i
	}
	for i, e := range g.Edges {
		if j, ok := wiredBy[key{e.From.Stage, e.From.FD}]; ok {
			return errAt(e, "%s: %s is wired twice, by edge %d and edge %d", g.Stages[e.From.Stage].Name(), e.From, j+1, i+1)
		}
	}
	for i, e := range g.Edges {
		if _, ok := wiredBy[key{e.From.Stage, e.From.FD}]; !ok {
			wiredBy[key{e.From.Stage, e.From.FD}] = i
		}
	}
	for _, st := range g.Stages {
		for _, in := range st.Inherits {
			if _, ok := wiredBy[key{in.From.Stage, in.From.FD}]; !ok {
				return &Error{Name: g.Name, Pos: st.Pos, Text: fmt.Sprintf("%s: shares %s of stage %d, which no edge wires", st.Name(), in.From, in.From.Stage+1)}
			}
		}
	}
	order, cycle := topoOrder(g)
	if cycle != nil {
		names := make([]string, len(cycle))
		for i, s := range cycle {
			names[i] = g.Stages[s].Name()
		}
		first := g.Edges[0]
		for _, e := range g.Edges {
			if e.From.Stage == cycle[0] && e.To.Stage == cycle[1] {
				first = e
				break
			}
		}
		return errAt(first, "cycle: %s", strings.Join(names, " → "))
	}
	g.Order = order
	g.index = &portIndex{ports: index(g), edges: len(g.Edges), stages: len(g.Stages)}
	return nil
}

// topoOrder sorts the stages so that every edge goes forward, taking the
// lowest-numbered ready stage first (Kahn's algorithm): stages no edge
// orders keep their source order. When the edges hold a cycle, it returns
// one, as the stages along it with the first repeated at the end.
func topoOrder(g *Graph) (order, cycle []int) {
	n := len(g.Stages)
	indeg := make([]int, n)
	next := make([][]int, n)
	for _, e := range g.Edges {
		next[e.From.Stage] = append(next[e.From.Stage], e.To.Stage)
		indeg[e.To.Stage]++
	}
	done := make([]bool, n)
	for len(order) < n {
		pick := -1
		for i := range n {
			if !done[i] && indeg[i] == 0 {
				pick = i
				break
			}
		}
		if pick < 0 {
			return nil, findCycle(next, done)
		}
		done[pick] = true
		order = append(order, pick)
		for _, j := range next[pick] {
			indeg[j]--
		}
	}
	return order, nil
}

// findCycle walks from a stage not yet ordered along edges between such
// stages until it comes back to one it passed: every such stage has an
// incoming edge from another, so the walk backwards never ends, and
// forwards likewise reaches a cycle.
func findCycle(next [][]int, done []bool) []int {
	start := -1
	for i := range done {
		if !done[i] {
			start = i
			break
		}
	}
	seen := map[int]int{} // stage → index in path
	var path []int
	for s := start; ; {
		if at, ok := seen[s]; ok {
			return append(path[at:], s)
		}
		seen[s] = len(path)
		path = append(path, s)
		moved := false
		for _, t := range next[s] {
			if !done[t] {
				s, moved = t, true
				break
			}
		}
		if !moved {
			// A dead end is no part of a cycle: mark it and start again.
			done[s] = true
			return findCycle(next, done)
		}
	}
}
