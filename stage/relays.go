package stage

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/gpipe/gpipe/parser"
)

// AddRelays adds to g the nodes that copy one output to several places,
// which the parser leaves to the planner (see parser.Graph): a tee of
// gpipe's wherever an output port feeds several edges, or feeds edges and
// gpipe's stdout (Graph.StdoutFrom), and one that copies gpipe's stdin to
// the stages that all read it (Graph.StdinReaders). A tee's first reader
// in the order of the edges (the source's) gets its stdout, unless
// gpipe's stdout has it, the others a path each, /dev/fd/63 down. The tees come after the user's stages, in the order of
// their positions; the edges stay in the order of theirs. The graph is
// checked again (parser.Check): the edge list then has no fan-out.
func AddRelays(g *parser.Graph) error {
	type key struct{ stage, fd int }
	readers := map[key][]*parser.Edge{}
	var sources []key
	for _, e := range g.Edges {
		k := key{e.From.Stage, e.From.FD}
		if readers[k] == nil {
			sources = append(sources, k)
		}
		readers[k] = append(readers[k], e)
	}
	toStdout := map[key]bool{}
	for _, p := range g.StdoutFrom {
		toStdout[key{p.Stage, p.FD}] = true
	}
	before := len(g.Stages)
	for _, k := range sources {
		n := len(readers[k])
		if toStdout[k] {
			n++
		}
		if n < 2 {
			continue
		}
		src := g.Stages[k.stage]
		what := src.Name()
		if src.Label != "" {
			what = "@" + src.Label
		}
		// The edge into the tee keeps the port as the stage knows it (a
		// path among its words), and the transport its mark asked for:
		// a named FIFO is the edge into the tee.
		in := &parser.Edge{From: parser.Port{Stage: k.stage, FD: k.fd}, Pos: readers[k][0].Pos}
		for _, e := range readers[k] {
			if e.From.Name != "" {
				in.From.Name, in.Transport = e.From.Name, e.Transport
				if e.Transport == parser.TransportFIFO {
					e.Transport = parser.TransportAuto
				}
			}
		}
		tee, err := addTee(g, src.Pos, fmt.Sprintf("copies %s of %s to its %d readers", in.From, what, n), readers[k], toStdout[k])
		if err != nil {
			return err
		}
		in.To = parser.Port{Stage: tee.ID, FD: 0}
		g.Edges = append(g.Edges, in)
	}
	if edges := g.StdinReaders; len(edges) > 1 {
		g.Edges = append(g.Edges, edges...)
		if _, err := addTee(g, edges[0].Pos, fmt.Sprintf("copies gpipe's stdin to its %d readers", len(edges)), edges, false); err != nil {
			return err
		}
	}
	g.StdoutFrom, g.StdinReaders = nil, nil
	if len(g.Stages) > before {
		orderAdded(g)
	}
	return parser.Check(g)
}

// addTee adds a tee stage that writes to every edge in outs (which it
// becomes the source of) and, when toStdout, to gpipe's stdout; its input
// is for the caller to wire.
func addTee(g *parser.Graph, at parser.Pos, why string, outs []*parser.Edge, toStdout bool) (*parser.Stage, error) {
	places, most := len(outs), parser.FirstPathFD-parser.LastPathFD+2 // its stdout and fds 63 to 10
	if toStdout {
		places++
	}
	if places > most {
		return nil, &parser.Error{Name: g.Name, Pos: at, Text: fmt.Sprintf("one output read in %d places: gpipe copies it to at most %d", places, most)}
	}
	tee := &parser.Stage{ID: len(g.Stages), Pos: at, Args: []string{"tee"}, Added: why}
	g.Stages = append(g.Stages, tee)
	fd := parser.FirstPathFD
	for i, e := range outs {
		if i == 0 && !toStdout {
			e.From = parser.Port{Stage: tee.ID, FD: 1}
			continue
		}
		path := "/dev/fd/" + strconv.Itoa(fd)
		e.From = parser.Port{Stage: tee.ID, FD: fd, Name: path}
		tee.Args = append(tee.Args, path)
		fd--
	}
	return tee, nil
}

// orderAdded numbers the stages gpipe added, which follow the user's, in
// the order of their positions, as the user's are, but for the copies of
// par stages, which come last (they are numbered within their par stage,
// "3.1", so that the others' numbers run on from the user's without a
// gap), and puts the edges in the order of theirs, the new ones among
// them.
func orderAdded(g *parser.Graph) {
	first := len(g.Stages)
	for i, st := range g.Stages {
		if st.Added != "" || st.CopyOf != nil {
			first = i
			break
		}
	}
	before := func(a, c parser.Pos) bool { return a.Line < c.Line || (a.Line == c.Line && a.Col < c.Col) }
	added := append([]*parser.Stage(nil), g.Stages[first:]...)
	sort.SliceStable(added, func(i, j int) bool {
		if ci, cj := added[i].CopyOf != nil, added[j].CopyOf != nil; ci != cj {
			return cj
		}
		return before(added[i].Pos, added[j].Pos)
	})
	newID := make([]int, len(g.Stages))
	for i := range newID {
		newID[i] = i
	}
	for k, st := range added {
		newID[st.ID] = first + k
	}
	for _, st := range added {
		st.ID = newID[st.ID]
	}
	copy(g.Stages[first:], added)
	for _, e := range g.Edges {
		e.From.Stage, e.To.Stage = newID[e.From.Stage], newID[e.To.Stage]
	}
	sort.SliceStable(g.Edges, func(i, j int) bool { return before(g.Edges[i].Pos, g.Edges[j].Pos) })
}
