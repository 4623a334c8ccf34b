package plumbing

import (
	"errors"
	"fmt"
	"os"

	"github.com/gpipe/gpipe/parser"
)

// Options tune how a plan's transports are made. The zero value uses the
// defaults.
type Options struct {
	// PipeSize is the capacity asked for on each pipe; 0 means
	// DefaultPipeSize, a negative value leaves the kernel's default.
	PipeSize int
}

// Plan holds the open transports of one graph. For every stage it knows the
// descriptors that the stage's edges give it (fd number → file). The plan
// owns those files: the supervisor releases a stage's ends once the stage
// has started (its process holds its own copies), and Close releases the
// rest. A Plan is not safe for concurrent use.
type Plan struct {
	ends [][]End
	// Transports records the transport chosen for each edge, in the order
	// of Graph.Edges.
	Transports []parser.Transport
}

// End is one descriptor a stage receives from an edge.
type End struct {
	FD   int
	File *os.File
}

// New chooses a transport for every edge of g and creates it. On error,
// everything created so far is closed again.
func New(g *parser.Graph, opts Options) (*Plan, error) {
	size := opts.PipeSize
	if size == 0 {
		size = DefaultPipeSize
	}
	p := &Plan{ends: make([][]End, len(g.Stages))}
	for i, e := range g.Edges {
		t, err := choose(g, e)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("edge %d: %w", i+1, err), p.Close())
		}
		r, w, err := Pipe(size)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("edge %d: %w", i+1, err), p.Close())
		}
		p.Transports = append(p.Transports, t)
		p.ends[e.From.Stage] = append(p.ends[e.From.Stage], End{FD: e.From.FD, File: w})
		p.ends[e.To.Stage] = append(p.ends[e.To.Stage], End{FD: e.To.FD, File: r})
	}
	return p, nil
}

// choose picks the transport of one edge. Every stage is an external program
// for now, and gpipe stays out of the data path between programs, so the
// answer is an anonymous pipe.
func choose(g *parser.Graph, e *parser.Edge) (parser.Transport, error) {
	switch e.Transport {
	case parser.TransportAuto, parser.TransportPipe:
		return parser.TransportPipe, nil
	}
	return 0, fmt.Errorf("transport %s is not available", e.Transport)
}

// Ends returns the descriptors stage i receives from its edges. The files
// stay owned by the plan.
func (p *Plan) Ends(i int) []End { return p.ends[i] }

// Release closes the plan's copies of stage i's ends, as soon as the stage's
// process holds its own (or will never run): a pipe's reader only sees EOF
// once every copy of the write end is closed.
func (p *Plan) Release(i int) error {
	var errs []error
	for _, e := range p.ends[i] {
		errs = append(errs, e.File.Close())
	}
	p.ends[i] = nil
	return errors.Join(errs...)
}

// Close releases every end not yet released. It is safe to call more than
// once.
func (p *Plan) Close() error {
	var errs []error
	for i := range p.ends {
		errs = append(errs, p.Release(i))
	}
	return errors.Join(errs...)
}
