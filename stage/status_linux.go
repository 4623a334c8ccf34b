package stage

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
)

// Status is how one stage ended.
type Status struct {
	Stage   *parser.Stage
	Started bool           // a process ran (false: no command words, or setup failed)
	Code    int            // the exit code, or ExitSignalled(N) for death by signal N
	Signal  syscall.Signal // the signal that killed the process; 0 if it exited
	Err     error          // why the stage did not start; nil if it did

	// Reported says Err was written to the stage's own standard error,
	// which its redirections had changed before one failed, as bash
	// writes it there; Options.OnError is not told of it.
	Reported bool

	// InputBroken says a builtin failed because the writer of its input
	// ring died before closing it: the failure is upstream's.
	InputBroken bool

	// CPU is the processor time the stage used: user and system time of
	// its process; zero for an in-process builtin, which has no clock of
	// its own that is cheap to read (see Busy).
	CPU time.Duration
	// User and System split a process stage's CPU time (zero for a
	// builtin inside gpipe, whose threads it shares), and MaxRSS is the
	// largest resident set it reached, in bytes (from wait4's rusage).
	User, System time.Duration
	MaxRSS       int64
	// Busy is the wall time an in-process builtin spent running rather
	// than waiting for its input or output, with Options.MeasureBusy.
	Busy time.Duration

	// Outputs is what each output of a fan-out builtin inside gpipe (tee,
	// split) queued for a reader slower than the others; nil for any
	// other stage, and for a builtin in a process of its own, which keeps
	// its figures to itself.
	Outputs []builtins.OutputStats

	// Skipped says the stage was never started: the start was abandoned
	// before its turn (another stage failed to start, or a teardown
	// signal came during the start).
	Skipped bool

	// IO is what the stage's process read and wrote so far, with
	// Options.MeasureIO: its last reading of /proc/PID/io, which is kept
	// once the process is gone; unknown for an in-process builtin.
	IO IO

	// Pid is the stage's process; 0 for an in-process builtin.
	Pid int
	// Began and Ended are when the stage started and when it was seen
	// to end (zero until then).
	Began, Ended time.Time
}

// BrokenPipe reports whether the stage stopped because the reader of its
// output had gone: killed by SIGPIPE, or exited with ExitBrokenPipe, as a shell
// or a builtin gives for it. Such a stage did not fail for its own reason.
func (s Status) BrokenPipe() bool {
	return s.Signal == unix.SIGPIPE || (s.Signal == 0 && s.Code == ExitBrokenPipe)
}

// String describes the status for --status: "0", "3", "141 (SIGPIPE)".
func (s Status) String() string {
	switch {
	case s.Signal != 0:
		return fmt.Sprintf("%d (%s)", s.Code, signalName(s.Signal))
	case s.Err != nil:
		return fmt.Sprintf("%d (not started)", s.Code)
	case s.Skipped:
		return "- (not started: the start was abandoned)"
	case s.InputBroken:
		return fmt.Sprintf("%d (input broken off)", s.Code)
	}
	return fmt.Sprint(s.Code)
}

func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// Result is how a whole run ended.
type Result struct {
	Statuses []Status // one per stage, in Graph.Stages order

	// Signal is the first teardown signal gpipe received; nil if the
	// pipeline ended by itself.
	Signal os.Signal

	// FailedStart is the stage whose failure to start made the run
	// abandon its start and tear down what had started (Options.FailFast);
	// -1 if none did. Its status is the run's.
	FailedStart int

	sinks []bool // sinks[i]: stage i writes to gpipe's own output
	order []int  // stage indexes, upstream first (parser.Graph.Order)
}

// newResult is the result of a run of g before any stage ended.
func newResult(g *parser.Graph) *Result {
	order := g.Order
	if len(order) != len(g.Stages) {
		// Not checked: a chain built in order, as tests build them.
		order = make([]int, len(g.Stages))
		for i := range order {
			order[i] = i
		}
	}
	return &Result{Statuses: make([]Status, len(g.Stages)), FailedStart: -1, sinks: sinks(g), order: order}
}

// ExitCode applies gpipe's exit-status rule:
//   - ExitSignalled(N) when gpipe was torn down by signal N;
//   - otherwise the status of the downstream-most stage that failed for its
//     own reason (not a broken pipe: "yes | head -1" succeeds; not a
//     builtin whose input writer died, whose failure is the writer's).
//     Downstream-most is last in the graph's topological order, where
//     stages no edge orders, such as two process substitutions of one
//     command, count in source order: the later one wins. A process
//     substitution's stage counts like any other, where bash ignores it;
//   - otherwise 141 when a stage writing to gpipe's own output broke its
//     pipe, so that gpipe in an outer pipeline looks like any other program;
//   - otherwise 0.
func (r *Result) ExitCode() int {
	if sig, ok := r.Signal.(syscall.Signal); ok {
		return ExitSignalled(sig)
	}
	if r.FailedStart >= 0 {
		return r.Statuses[r.FailedStart].Code
	}
	for k := len(r.order) - 1; k >= 0; k-- {
		if s := r.Statuses[r.order[k]]; s.Code != 0 && !s.BrokenPipe() && !s.InputBroken {
			return s.Code
		}
	}
	for i, s := range r.Statuses {
		if r.sinks[i] && s.BrokenPipe() {
			return s.Code
		}
	}
	return 0
}
