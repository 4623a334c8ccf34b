package parser

// What each descriptor of each stage is, worked out once from the edges,
// the shared descriptors and the redirections, so that nobody walks the
// edge list to ask "what is stage i's descriptor N?".

// ports indexes a checked graph: the edge at each port, each stage's
// edges in and out, and the ports other stages share.
type ports struct {
	at      map[Port]int // the edge at a port (Port.Name left empty)
	in, out [][]int      // edge indexes by stage
	shared  map[Port]bool
}

// index builds the index of g's ports as they are now.
func index(g *Graph) *ports {
	x := &ports{at: map[Port]int{}, in: make([][]int, len(g.Stages)), out: make([][]int, len(g.Stages)), shared: map[Port]bool{}}
	for k, e := range g.Edges {
		x.at[Port{Stage: e.From.Stage, FD: e.From.FD}] = k
		x.at[Port{Stage: e.To.Stage, FD: e.To.FD}] = k
		if e.From.Stage >= 0 && e.From.Stage < len(g.Stages) {
			x.out[e.From.Stage] = append(x.out[e.From.Stage], k)
		}
		if e.To.Stage >= 0 && e.To.Stage < len(g.Stages) {
			x.in[e.To.Stage] = append(x.in[e.To.Stage], k)
		}
	}
	for _, st := range g.Stages {
		for _, in := range st.Inherits {
			x.shared[Port{Stage: in.From.Stage, FD: in.From.FD}] = true
		}
	}
	return x
}

// ports is g's index: the one Check made, or, for a graph Check has not
// seen (or changed since), one made now.
func (g *Graph) ports() *ports {
	if x := g.index; x != nil && x.edges == len(g.Edges) && x.stages == len(g.Stages) {
		return x.ports
	}
	return index(g)
}

// portIndex is the index Check keeps, with the sizes it was made for.
type portIndex struct {
	*ports
	edges, stages int
}

// EdgeAt is the edge whose end is descriptor p.FD of stage p.Stage
// (p.Name does not matter); ok is false when no edge wires it.
func (g *Graph) EdgeAt(p Port) (k int, ok bool) {
	k, ok = g.ports().at[Port{Stage: p.Stage, FD: p.FD}]
	return k, ok
}

// Out lists the edges stage i writes to, In those it reads, by index in
// g.Edges, in order.
func (g *Graph) Out(i int) []int { return g.ports().out[i] }
func (g *Graph) In(i int) []int  { return g.ports().in[i] }

// Shared reports whether another stage shares port p (Stage.Inherits): a
// process substitution's stage that writes into its parent's stdout.
func (g *Graph) Shared(p Port) bool { return g.ports().shared[Port{Stage: p.Stage, FD: p.FD}] }

// Desc is what descriptor FD of a stage is once the pipeline is wired:
// the end of an edge, a copy of another stage's edge end, or, for 0, 1
// and 2 when neither, gpipe's own standard file; and whether one of the
// stage's own redirections then replaces it.
type Desc struct {
	Edge       int   // the edge at this port, -1 for none
	Inherits   *Port // the port it is a copy of, nil for none
	Own        bool  // gpipe's own stdin, stdout or stderr
	Redirected bool  // a redirection of the stage replaces it
}

// Desc is what descriptor fd of stage i is (see Desc).
func (g *Graph) Desc(i, fd int) Desc {
	d := Desc{Edge: -1}
	if k, ok := g.EdgeAt(Port{Stage: i, FD: fd}); ok {
		d.Edge = k
	}
	st := g.Stages[i]
	for _, in := range st.Inherits {
		if in.FD == fd {
			from := in.From
			d.Inherits = &from
		}
	}
	d.Own = d.Edge < 0 && d.Inherits == nil && fd <= 2
	for _, r := range st.Redirs {
		if r.FD == fd {
			d.Redirected = true
		}
	}
	return d
}
