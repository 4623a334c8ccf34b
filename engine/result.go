package engine

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// Result is how a run ended: what gpipe --status and its exit status say.
type Result struct {
	// ExitCode is gpipe's exit status for the run: 128+N when it was torn
	// down by signal N (a cancelled context is SIGTERM's 143), else the
	// status of the downstream-most stage that failed for its own reason
	// (a broken pipe is not one), else 0. See the README's "Exit status".
	ExitCode int

	// Signal is the signal that tore the run down (SIGTERM for a
	// cancelled context); 0 when it ended by itself.
	Signal syscall.Signal

	// Stages holds every stage's status, in the order of the source (the
	// stages gpipe added, such as the tees of a pipeline file, last).
	Stages []StageStatus

	// OutputHeld says Wait cut the copy of the output short after
	// Options.WaitDelay: a process the stages left behind held it.
	OutputHeld bool

	// Edges holds every edge's transport and bytes, in the order of the
	// plan's graph (Plan.Graph().Edges), as --stats reports them.
	Edges []EdgeStatus

	// Wall is how long the run took, from the start of its first stage
	// until every stage had ended.
	Wall time.Duration

	// Raw is the supervisor's own account, which reports read (--stats:
	// CPU, memory, I/O, fan-out queues).
	Raw *stage.Result

	// failed is the stage whose status ExitCode is; -1 for none.
	failed int
}

// StageStatus is how one stage ended.
type StageStatus struct {
	// Name is how gpipe's messages name the stage: "stage 2 (grep)".
	Name string
	// Args is the stage's expanded command line.
	Args []string
	// Code is its exit code, 128+N when signal N killed it.
	Code int
	// Signal is the signal that killed it; 0 if it exited.
	Signal syscall.Signal
	// Err says why it did not start (a program not found, a failed
	// redirection); nil if it started.
	Err error
	// Status is the status as --status prints it: "0", "141 (SIGPIPE)",
	// "127 (not started)".
	Status string
	// StderrTail is the last whole lines it wrote to its standard error,
	// Options.StderrTail bytes at most (of a longer line, its end); ""
	// without the option.
	StderrTail string
}

// EdgeStatus is what went through one edge.
type EdgeStatus struct {
	// From and To name its ends: "stage 1 (seq) stdout", "stage 3
	// (paste) /dev/fd/63".
	From, To string
	// Transport is how it moved its bytes: "pipe", "fifo", "shm", "mem".
	Transport string
	// Counted says gpipe saw the bytes: it counts those of rings (shm,
	// mem), whose both ends are its own; a pipe or FIFO between programs
	// goes through the kernel uncounted.
	Counted bool
	// Bytes is what the reader consumed, Written what the writer
	// committed; they differ when the reader stopped early. Zero when
	// not counted.
	Bytes, Written uint64
}

// edgeStatuses is each edge's transport and final counts.
func edgeStatuses(g *parser.Graph, choices []plumbing.Choice, snap *stage.Snapshot) []EdgeStatus {
	edges := make([]EdgeStatus, len(g.Edges))
	for k, e := range g.Edges {
		es := EdgeStatus{
			From:      g.Stages[e.From.Stage].Name() + " " + e.From.String(),
			To:        g.Stages[e.To.Stage].Name() + " " + e.To.String(),
			Transport: choices[k].Transport.String(),
		}
		if snap != nil && k < len(snap.Edges) && snap.Edges[k].Known {
			c := snap.Edges[k]
			es.Counted, es.Bytes, es.Written = true, c.Read, c.Written
		}
		edges[k] = es
	}
	return edges
}

// newResult is r as the package's callers see it.
func newResult(g *parser.Graph, r *stage.Result) *Result {
	res := &Result{ExitCode: r.ExitCode(), failed: -1}
	if sig, ok := r.Signal.(syscall.Signal); ok {
		res.Signal = sig
	}
	for i, st := range r.Statuses {
		res.Stages = append(res.Stages, StageStatus{
			Name:   g.Stages[i].Name(),
			Args:   g.Stages[i].Args,
			Code:   st.Code,
			Signal: st.Signal,
			Err:    st.Err,
			Status: st.String(),
		})
	}
	if res.Signal == 0 && res.ExitCode != 0 {
		// The downstream-most stage with the run's status.
		for k := len(g.Order) - 1; k >= 0; k-- {
			if i := g.Order[k]; r.Statuses[i].Code == res.ExitCode {
				res.failed = i
				break
			}
		}
	}
	return res
}

// Err is nil for a run that succeeded (ExitCode 0), and otherwise an
// *ExitError that names the stage whose status is the run's.
func (r *Result) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	e := &ExitError{Code: r.ExitCode, Signal: r.Signal}
	if r.failed >= 0 {
		e.Stage = &r.Stages[r.failed]
	}
	return e
}

// ExitError is a run that did not succeed.
type ExitError struct {
	Code   int            // the run's exit status (Result.ExitCode)
	Signal syscall.Signal // the signal that tore it down, if one did
	Stage  *StageStatus   // the stage whose status is the run's; nil for a teardown
}

func (e *ExitError) Error() string {
	switch {
	case e.Signal != 0:
		return fmt.Sprintf("gpipe: torn down by %v: exit status %d", e.Signal, e.Code)
	case e.Stage != nil && e.Stage.Err != nil:
		return fmt.Sprintf("gpipe: %s: %v", e.Stage.Name, e.Stage.Err)
	case e.Stage != nil && lastLine(e.Stage.StderrTail) != "":
		return fmt.Sprintf("gpipe: %s: exit status %s: %s", e.Stage.Name, e.Stage.Status, lastLine(e.Stage.StderrTail))
	case e.Stage != nil:
		return fmt.Sprintf("gpipe: %s: exit status %s", e.Stage.Name, e.Stage.Status)
	}
	return fmt.Sprintf("gpipe: exit status %d", e.Code)
}

// lastLine is the last line of s that holds anything, without its newline.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
