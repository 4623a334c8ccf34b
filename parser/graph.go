package parser

import (
	"fmt"
	"sort"
	"strings"
)

// Graph is a pipeline as a directed acyclic graph: stages are the vertices,
// edges carry bytes from an output port of one stage to an input port of
// another. A linear spec "a | b | c" is the chain a→b→c; later features
// (process substitution, fan-out, fan-in, pipeline files) add stages and
// edges to the same structure.
//
// Stages are numbered in the order they appear in the source (the position
// of their first word), which is how users count them: in
// "seq 3 | paste - <(seq 4 6)" the second seq is stage 3. That is not
// always the order data flows in; Order is, once Check has run.
type Graph struct {
	Name   string // source name used in positions: "spec" or a file name
	Stages []*Stage
	Edges  []*Edge

	// Order lists the stage indexes in topological order: every edge goes
	// from a stage listed earlier to one listed later, stages no edge
	// orders stay in source order. Check computes it.
	Order []int

	// A graph as the parser returns it is the user's: an output read in
	// several places (a pipeline file's fan-out) is several edges from
	// one port, and gpipe's own stdio is not a stage. The planner adds
	// what copies them (stage.AddRelays): for the ports listed in
	// StdoutFrom, whose output goes to gpipe's stdout ("@x | @stdout")
	// while stages read it too, and for StdinReaders, the edges (without
	// a From) of the stages that read gpipe's stdin when more than one
	// does ("@stdin | a", "@stdin | b").
	StdoutFrom   []Port
	StdinReaders []*Edge

	// index is what Check found of the ports (see EdgeAt, Desc).
	index *portIndex
}

// Topology is the graph as a test reads it: a line per stage (its number,
// its words, "[in N]" for a process substitution's, "[fd F = S.D]" for a
// shared descriptor), a line per edge ("S.D(name) → S.D"), and the order.
func (g *Graph) Topology() string {
	var sb strings.Builder
	for _, st := range g.Stages {
		fmt.Fprintf(&sb, "%s %s", st.Number(), strings.Join(st.Args, " "))
		if st.Parent != nil {
			fmt.Fprintf(&sb, " [in %d]", st.Parent.ID+1)
		}
		for _, in := range st.Inherits {
			fmt.Fprintf(&sb, " [fd %d = %s.%d]", in.FD, g.Stages[in.From.Stage].Number(), in.From.FD)
		}
		sb.WriteByte('\n')
	}
	port := func(p Port) string {
		s := fmt.Sprintf("%s.%d", g.Stages[p.Stage].Number(), p.FD)
		if p.Name != "" {
			s += "(" + p.Name + ")"
		}
		return s
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&sb, "%s → %s\n", port(e.From), port(e.To))
	}
	order := make([]string, len(g.Order))
	for i, x := range g.Order {
		order[i] = g.Stages[x].Number()
	}
	fmt.Fprintf(&sb, "order %v\n", order)
	return sb.String()
}

// Stage is one process of the pipeline, as bash would run it in a subshell.
type Stage struct {
	ID  int // index in Graph.Stages; shown to users as ID+1
	Pos Pos // position of the stage's first word

	// Args is the expanded argument vector; Args[0] is the command name.
	// It is empty for a stage made only of assignments and redirections
	// ("X=1", "> file"), which bash accepts and which runs no program.
	Args []string

	// Env holds the stage's own NAME=value assignments, in order; they are
	// added to the inherited environment of the stage's process only.
	Env []string

	// Redirs are applied in order after the stage's edges are connected,
	// exactly as bash applies them after setting up the pipe.
	Redirs []Redirect

	// Parent is the stage whose process substitution "<(…)" or ">(…)"
	// this stage is part of; nil for a stage of the top-level pipeline.
	Parent *Stage

	// Inherits lists the descriptors this stage shares with another
	// stage's edge end instead of having its own: bash forks a process
	// substitution from the process of the command whose word holds it,
	// so in "seq 3 | tee >(wc -l) | cat" wc writes into the pipe that tee
	// writes to, and the first stage of "<(…)" reads its parent's stdin.
	// A descriptor the stage's own redirections replace first is not
	// listed, nor one its parent gets from gpipe itself.
	Inherits []Inherit

	// Added says why gpipe added this stage, which the user did not write
	// (a tee where a pipeline file reads one output in several places);
	// empty for the user's own stages.
	Added string

	// Label is the stage's name in a pipeline file ("errs" for
	// "errs: grep …"), empty when it has none.
	Label string

	// CopyOf is the par stage this stage is copy number Copy (from 1) of,
	// which the planner added (stage.ExpandPar); nil for any other stage.
	// A copy is numbered within its par stage: "3.2".
	CopyOf *Stage
	Copy   int

	// PerBlock says the stage, a copy of an ordered par stage (par -k),
	// runs its command once per block of its input, which comes framed,
	// and frames each block's output, so that the merge can put the
	// outputs back in the input's order.
	PerBlock bool

	// ownStdio marks the descriptors 0 and 1 that a pipeline file gives
	// gpipe's own stdin and stdout ("@stdin | …", "… | @stdout"), which
	// a stage of a process substitution then does not share with its
	// parent.
	ownStdio [2]bool
}

// Inherit is one shared descriptor: FD of the stage is a copy of the edge
// end at From, a port of another stage that an edge wires.
type Inherit struct {
	FD   int
	From Port
}

// Number is the stage's number as users see it: ID+1, or for a copy of a
// par stage, that stage's number and the copy's, "3.2".
func (s *Stage) Number() string {
	if s.CopyOf != nil {
		return fmt.Sprintf("%d.%d", s.CopyOf.ID+1, s.Copy)
	}
	return fmt.Sprint(s.ID + 1)
}

// Listed is the order in which reports list the stages: by number, each
// par stage followed by its copies ("3", "3.1", "3.2", "4").
func (g *Graph) Listed() []int {
	ids := make([]int, len(g.Stages))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return ListedBefore(g.Stages[ids[a]], g.Stages[ids[b]]) })
	return ids
}

// ListedBefore reports whether reports list stage a before stage b (see
// Graph.Listed).
func ListedBefore(a, b *Stage) bool {
	key := func(st *Stage) (int, int) {
		if st.CopyOf != nil {
			return st.CopyOf.ID, st.Copy
		}
		return st.ID, 0
	}
	na, ca := key(a)
	nb, cb := key(b)
	return na < nb || (na == nb && ca < cb)
}

// Name is how messages refer to the stage: "stage 2 (grep)", or with its
// name in a pipeline file, "stage 2 (errs: grep)"; a copy of a par stage
// is "stage 2.1 (grep)".
func (s *Stage) Name() string {
	switch {
	case len(s.Args) == 0 && s.Label != "":
		return fmt.Sprintf("stage %s (%s:)", s.Number(), s.Label)
	case len(s.Args) == 0:
		return fmt.Sprintf("stage %s", s.Number())
	case s.Label != "":
		// As the file defines it: "stage 3 (errs: grep)".
		return fmt.Sprintf("stage %s (%s: %s)", s.Number(), s.Label, s.Args[0])
	}
	return fmt.Sprintf("stage %s (%s)", s.Number(), s.Args[0])
}

// Port is one end of an edge: a file descriptor of a stage's process.
type Port struct {
	Stage int // index in Graph.Stages
	FD    int // the descriptor number in the stage's process: 0 stdin, 1 stdout

	// Name is the path by which the stage reaches this end, when it gets
	// one as an argument rather than using the descriptor directly: the
	// "/dev/fd/63" that a process substitution expands to. Empty for
	// plain descriptor ports.
	Name string
}

// String is how messages name the port: "stdin", "stdout", "/dev/fd/63",
// "fd 3".
func (p Port) String() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.FD == 0:
		return "stdin"
	case p.FD == 1:
		return "stdout"
	}
	return fmt.Sprintf("fd %d", p.FD)
}

// Edge carries bytes from one stage's output port to another's input port.
type Edge struct {
	From, To  Port
	Transport Transport // the spec's wish; TransportAuto lets plumbing choose
	Pos       Pos       // position of the '|', "<(" or ">(" that made the edge

	// FIFO is the path of the named FIFO the planner made of the edge (a
	// process substitution marked "@fifo", or any under --transport
	// fifo: plumbing.NameFIFOs), which the port's stage opens by that
	// path; empty for every other edge. The parser never sets it.
	FIFO string
}

// Transport names how an edge moves bytes.
type Transport int

const (
	TransportAuto Transport = iota // chosen by plumbing
	TransportPipe                  // anonymous pipe
	TransportFIFO                  // named FIFO
	TransportShm                   // shared-memory ring between processes
	TransportMem                   // in-process ring between builtins run by gpipe itself
)

func (t Transport) String() string {
	switch t {
	case TransportAuto:
		return "auto"
	case TransportPipe:
		return "pipe"
	case TransportFIFO:
		return "fifo"
	case TransportShm:
		return "shm"
	case TransportMem:
		return "mem"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// RedirOp is what a redirection does to its descriptor.
type RedirOp int

const (
	RedirRead      RedirOp = iota // n< path
	RedirWrite                    // n> path, n>| path
	RedirAppend                   // n>> path
	RedirReadWrite                // n<> path
	RedirDup                      // n>&m, n<&m: n becomes a copy of m
	RedirClose                    // n>&-, n<&-
)

// Redirect is one redirection of a stage. "&> f" and "|&" are expanded by
// the parser into their bash equivalents (">f 2>&1" and "2>&1").
type Redirect struct {
	Pos   Pos
	FD    int
	Op    RedirOp
	Path  string // the expanded target, for the file operations
	DupFD int    // the source descriptor, for RedirDup
}

// Pos is a position in the source: 1-based line and column (in bytes).
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }
