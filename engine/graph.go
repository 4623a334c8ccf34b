package engine

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gpipe/gpipe/parser"
)

// Graph is a pipeline built in Go, stage by stage, rather than from bash
// text: programs, builtins and Go functions, joined by edges. A stage's
// output may feed several stages (gpipe adds a tee that copies it, as in
// a pipeline file), and a stage may read several inputs, each through a
// path argument as from a process substitution ("paste <(a) <(b)").
//
// A Graph is not safe for concurrent use; Pipeline makes it a pipeline to
// plan and run, which may be done more than once.
type Graph struct {
	nodes []*node
	links []link
	funcs map[string]Func
	err   error // the first misuse, reported by Pipeline
}

type node struct {
	args []string
}

// link is one edge as the caller asked for it: from's standard output to
// to's standard input, or to a path argument of to's.
type link struct {
	from, to int
	toArg    bool
}

// Stage is one stage of a Graph.
type Stage struct {
	g  *Graph
	id int
}

// NewGraph returns an empty graph.
func NewGraph() *Graph { return &Graph{funcs: map[string]Func{}} }

// Command adds a stage that runs name with args: a builtin of that name
// when it takes these arguments, else the program found in the PATH, as
// in a spec. Arguments are taken as they are: nothing is expanded.
func (g *Graph) Command(name string, args ...string) *Stage {
	g.nodes = append(g.nodes, &node{args: append([]string{name}, args...)})
	return &Stage{g: g, id: len(g.nodes) - 1}
}

// Func adds a stage that runs f inside this process, called name in
// messages and plans; args are given to f. Once added, the function is
// the graph's command name: Command(name) adds another stage running it.
func (g *Graph) Func(name string, f Func, args ...string) *Stage {
	if _, ok := g.funcs[name]; ok {
		g.fail(fmt.Errorf("gpipe: Graph.Func: a second function called %q (Command(%[1]q) adds a stage running the first)", name))
	}
	g.funcs[name] = f
	return g.Command(name, args...)
}

// Pipe joins from's standard output to to's standard input, as "from | to".
// Several stages may read one output; a stage reads one standard input.
func (g *Graph) Pipe(from, to *Stage) { g.link(from, to, false) }

// PipeArg joins from's standard output to a path that is added to to's
// arguments ("/dev/fd/63", then 62, …), as "to <(from)": how one stage
// reads several inputs (cat, paste, diff, merge).
func (g *Graph) PipeArg(from, to *Stage) { g.link(from, to, true) }

func (g *Graph) link(from, to *Stage, toArg bool) {
	switch {
	case from == nil || to == nil || from.g != g || to.g != g:
		g.fail(fmt.Errorf("gpipe: Graph: a stage of another graph, or nil"))
	case from.id == to.id:
		g.fail(fmt.Errorf("gpipe: Graph: stage %d (%s) feeds itself", from.id+1, g.nodes[from.id].args[0]))
	default:
		g.links = append(g.links, link{from: from.id, to: to.id, toArg: toArg})
	}
}

func (g *Graph) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// Pipeline checks the graph (a stage read twice on its standard input, a
// cycle) and returns it as a pipeline to plan and run. Later changes to
// the graph do not change the pipeline.
func (g *Graph) Pipeline() (*Pipeline, error) {
	if g.err != nil {
		return nil, g.err
	}
	nodes := make([][]string, len(g.nodes))
	for i, n := range g.nodes {
		nodes[i] = append([]string(nil), n.args...)
	}
	links := append([]link(nil), g.links...)
	funcs := make(map[string]Func, len(g.funcs))
	for k, v := range g.funcs {
		funcs[k] = v
	}
	p := &Pipeline{name: "graph", funcs: funcs, build: func() (*parser.Graph, error) { return buildGraph(nodes, links) }}
	_, err := p.build()
	return p, err
}

// The path arguments a stage gets for its inputs: descriptors 63 down to
// 10, as bash numbers process substitutions.
const firstPortFD, lastPortFD = parser.FirstPathFD, parser.LastPathFD

// buildGraph makes the stages and edges of the nodes and links; an output
// that feeds several stages is a fan-out the planner copies with a tee,
// as a pipeline file's.
func buildGraph(nodes [][]string, links []link) (*parser.Graph, error) {
	g := &parser.Graph{Name: "graph"}
	for i, args := range nodes {
		g.Stages = append(g.Stages, &parser.Stage{ID: i, Args: append([]string(nil), args...)})
	}
	nextFD := make([]int, len(nodes))
	for i := range nextFD {
		nextFD[i] = firstPortFD
	}
	port := func(st *parser.Stage) (parser.Port, error) {
		fd := nextFD[st.ID]
		if fd < lastPortFD {
			return parser.Port{}, fmt.Errorf("gpipe: Graph: %s has more than %d path arguments", st.Name(), firstPortFD-lastPortFD+1)
		}
		nextFD[st.ID]--
		path := "/dev/fd/" + strconv.Itoa(fd)
		st.Args = append(st.Args, path)
		return parser.Port{Stage: st.ID, FD: fd, Name: path}, nil
	}
	// Every reader of each stage's output, in the order linked.
	readers := make([][]parser.Port, len(nodes))
	stdinFrom := make([]int, len(nodes))
	for i := range stdinFrom {
		stdinFrom[i] = -1
	}
	for _, l := range links {
		to := g.Stages[l.to]
		var p parser.Port
		if l.toArg {
			var err error
			if p, err = port(to); err != nil {
				return nil, err
			}
		} else {
			if j := stdinFrom[l.to]; j >= 0 {
				return nil, fmt.Errorf("gpipe: Graph: %s reads its standard input from both %s and %s: join them with a stage that reads both (PipeArg)", to.Name(), g.Stages[j].Name(), g.Stages[l.from].Name())
			}
			stdinFrom[l.to] = l.from
			p = parser.Port{Stage: l.to, FD: 0}
		}
		readers[l.from] = append(readers[l.from], p)
	}
	// An output read by several stages is several edges from one port,
	// as a pipeline file's: the planner adds the tee (stage.AddRelays).
	for from, ports := range readers {
		for _, to := range ports {
			g.Edges = append(g.Edges, &parser.Edge{From: parser.Port{Stage: from, FD: 1}, To: to})
		}
	}
	if err := parser.Check(g); err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) {
			// No source, so no position: the text names the stages.
			return nil, fmt.Errorf("gpipe: Graph: %s", pe.Text)
		}
		return nil, err
	}
	return g, nil
}
