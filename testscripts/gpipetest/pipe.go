package gpipetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/report"
	"github.com/gpipe/gpipe/stage"
)

// waitDelay is how long a pipeline's output is still copied once its
// stages have ended: a process one left behind (a daemon that did not
// close it) may hold it for ever.
const waitDelay = time.Second

// runs counts the pipelines started by this process, for their tags.
var runs atomic.Int64

// grace is how long the stages of a pipeline get after a teardown (the
// script's end, its deadline) before they are killed.
const grace = 2 * time.Second

// outcome is how the last pipe or await ended, for status.
type outcome struct {
	what string // how messages name the command: "pipe 'seq 3 | false'"
	code int    // the exit status, gpipe's rule (engine.Result.ExitCode)
	sig  syscall.Signal
}

// cmdPipe runs a pipeline through the engine, in the test process:
//
//	pipe [--status] SPEC [&NAME&]
//	pipe [--status] -f FILE [NAME=VALUE…] [&NAME&]
func cmdPipe(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	const usage = "usage: pipe [--status] SPEC [&NAME&] | pipe [--status] -f FILE [NAME=VALUE…] [&NAME&]"
	name, args, bg := backgroundName(args)
	if bg && name == "" {
		ts.Fatalf("pipe: a background pipeline needs a name (&NAME&), for signal, waitout and await")
	}
	status := false
	if len(args) > 0 && args[0] == "--status" {
		status, args = true, args[1:]
	}
	var (
		p    *engine.Pipeline
		what string
		err  error
	)
	switch {
	case len(args) >= 1 && args[0] == "-f":
		if len(args) == 1 {
			ts.Fatalf("%s", usage)
		}
		what = "pipe -f " + strings.Join(args[1:], " ")
		src, rerr := os.ReadFile(ts.MkAbs(args[1]))
		ts.Check(rerr)
		p, err = engine.ParseFile(args[1], src, args[2:]...)
	case len(args) == 1:
		what = "pipe " + report.ShellQuote(args[0])
		p, err = engine.Parse(args[0])
	default:
		ts.Fatalf("%s", usage)
	}
	if bg {
		if _, dup := st.bg[name]; dup {
			ts.Fatalf("pipe: a background command %s is still running", name)
		}
		if cmd, _ := execBackground(ts, name); cmd != nil {
			ts.Fatalf("pipe: exec started a background command %s already", name)
		}
	}
	if err != nil {
		ts.Fatalf("%s: %v", what, err) // the script's own mistake
	}
	env, ok := scriptEnv(ts)
	if !ok {
		env = os.Environ()
	}
	tag := fmt.Sprintf("GPIPETEST_RUN=%d.%d", os.Getpid(), runs.Add(1))
	b := &background{name: name, what: what, neg: neg, status: status, tag: tag, done: make(chan struct{})}
	opts := engine.Options{
		Env:       append(env[:len(env):len(env)], tag),
		Dir:       ts.MkAbs("."),
		Stdout:    &b.stdout,
		Stderr:    &b.stderr,
		Grace:     grace,
		WaitDelay: waitDelay,
	}
	pl, err := p.Plan(opts)
	if err == nil {
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel = cancel
		b.job, err = pl.Start(ctx)
		if err != nil {
			cancel()
		}
	}
	st.all = append(st.all, b)
	if err != nil {
		// Nothing runs. As the gpipe command: a message, and a status;
		// or, for what the command would not meet, the script fails.
		code, ok := planCode(err)
		b.res = &outcome{what: what, code: code}
		close(b.done)
		if !ok {
			ts.Fatalf("%s: %v", what, err)
		}
		fmt.Fprintf(&b.stderr, "gpipe: %v\n", err)
	} else {
		go b.wait()
	}
	if bg {
		st.bg[name] = b
		return
	}
	if !st.await(b.done) {
		b.tornDown(ts, st, what)
	}
	b.finish(ts, st)
}

// tornDown ends a pipeline still running at the script's deadline, and
// fails the script saying so, with its output and how it ended once torn
// down, if it did.
func (b *background) tornDown(ts *testscript.TestScript, st *state, what string) {
	b.stop()
	if !b.ended() {
		io.WriteString(ts.Stdout(), b.stdout.String())
		io.WriteString(ts.Stderr(), b.stderr.String())
		ts.Fatalf("%s: still running at the script's deadline, and after its teardown", what)
	}
	io.WriteString(ts.Stdout(), b.stdout.String())
	io.WriteString(ts.Stderr(), b.stderr.String()+b.statusLines)
	st.last = b.res
	ts.Fatalf("%s: still running at the script's deadline: torn down (%s)", what, b.res)
}

// planCode is the exit status of the gpipe command for a pipeline that
// could not be planned: 126 or 127 for a program, 2 for a builtin's bad
// usage or a spec that does not expand.
func planCode(err error) (int, bool) {
	var (
		le *stage.LookupError
		be *stage.BuiltinError
		pe *parser.Error
	)
	switch {
	case errors.As(err, &le):
		return le.Code, true
	case errors.As(err, &be), errors.As(err, &pe):
		return 2, true
	}
	return 0, false
}

// background is one pipeline started by pipe, in the background or not.
type background struct {
	name, what   string
	neg, status  bool
	tag          string // NAME=value in the environment of its processes
	job          *engine.Job
	cancel       context.CancelFunc
	stdout       syncBuffer
	stderr       syncBuffer
	done         chan struct{} // closed once it ended and its output is in
	res          *outcome
	statusLines  string // --status
	held         bool   // a process it left behind held its output (waitDelay)
	seen         [2]int // how much of stdout and stderr waitout has matched
	group        int    // its process group, once started
	groupOnce    sync.Once
	stopOnce     sync.Once
	finishedOnce sync.Once
}

// wait waits for the job, then records how it ended.
func (b *background) wait() {
	b.processGroup()
	r := b.job.Wait()
	b.cancel()
	if b.status {
		var w strings.Builder
		report.PrintStatus(&w, r.Raw)
		b.statusLines = w.String()
	}
	b.held = r.OutputHeld
	o := &outcome{what: b.what, code: r.ExitCode, sig: r.Signal}
	if e, ok := r.Err().(*engine.ExitError); ok && e.Stage != nil {
		o.sig = e.Stage.Signal
	}
	b.res = o
	close(b.done)
}

// processGroup is the pipeline's process group, remembered while it runs
// so that nochildren can look for it after the end.
func (b *background) processGroup() int {
	b.groupOnce.Do(func() {
		if b.job != nil {
			b.group = b.job.Group()
		}
	})
	return b.group
}

func (b *background) ended() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// stop ends what is left of the pipeline: if it still runs, its process
// group gets SIGTERM and the pipeline is torn down (its stages get
// SIGTERM, and SIGKILL after the grace); then whatever carries its tag
// (and, while it still runs, whatever is in its group) gets SIGTERM, and
// SIGKILL after the grace. Once the pipeline has ended, its group's id
// may be another's: only the tag counts.
func (b *background) stop() {
	b.stopOnce.Do(func() {
		pg := b.processGroup()
		if !b.ended() {
			if pg > 0 {
				syscall.Kill(-pg, syscall.SIGTERM)
			}
			b.cancel()
			select {
			case <-b.done:
			case <-time.After(2 * grace):
			}
		}
		left := func() []int {
			if b.ended() {
				return pidsIn(0, b.tag)
			}
			return pidsIn(pg, b.tag)
		}
		pids := left()
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		for end := time.Now().Add(grace); len(pids) > 0 && time.Now().Before(end); pids = left() {
			time.Sleep(10 * time.Millisecond)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// finish makes the ended pipeline the script's last command: its output
// becomes the script's stdout and stderr, and its status is checked as
// exec checks a program's (! expects a failure).
func (b *background) finish(ts *testscript.TestScript, st *state) {
	b.finishedOnce.Do(func() {
		io.WriteString(ts.Stdout(), b.stdout.String())
		io.WriteString(ts.Stderr(), b.stderr.String()+b.statusLines)
		if b.held {
			ts.Logf("%s: a process it left behind held its output: its copy stopped %v after its stages ended", b.what, waitDelay)
		}
		st.last = b.res
		switch {
		case b.res.code != 0 && !b.neg:
			ts.Fatalf("%s: unexpected failure: %s", b.what, b.res)
		case b.res.code == 0 && b.neg:
			ts.Fatalf("%s: unexpected success", b.what)
		}
	})
}

func (o *outcome) String() string {
	if o.sig != 0 {
		return fmt.Sprintf("exit status %d (%s)", o.code, unixSignalName(o.sig))
	}
	return "exit status " + strconv.Itoa(o.code)
}

// cmdAwait waits for a background pipeline to end, which makes it the
// last command, as testscript's wait does for exec's:
//
//	await NAME
func cmdAwait(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if len(args) != 1 {
		ts.Fatalf("usage: await NAME")
	}
	if neg {
		ts.Fatalf("unsupported: ! await (use ! on the pipe line)")
	}
	b := st.bg[args[0]]
	if b == nil {
		if cmd, _ := execBackground(ts, args[0]); cmd != nil {
			ts.Fatalf("await %s: exec started it: use wait", args[0])
		}
		ts.Fatalf("await %s: no background pipe of that name", args[0])
	}
	delete(st.bg, args[0])
	st.awaited[args[0]] = b
	if !st.await(b.done) {
		b.tornDown(ts, st, "await "+args[0])
	}
	b.finish(ts, st)
}

// cmdStatus checks the exit status of the last pipe or await:
//
//	status N
//	status sig NAME
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if st.last == nil {
		ts.Fatalf("status: no pipe or await has ended yet")
	}
	var ok bool
	switch {
	case len(args) == 1:
		n, err := strconv.Atoi(args[0])
		if err != nil {
			ts.Fatalf("usage: status N | status sig NAME")
		}
		ok = st.last.code == n
	case len(args) == 2 && args[0] == "sig":
		sig, err := signalNumber(args[1])
		ts.Check(err)
		ok = st.last.sig == sig
	default:
		ts.Fatalf("usage: status N | status sig NAME")
	}
	if ok == neg {
		not := ""
		if neg {
			not = "not "
		}
		ts.Fatalf("status: want %s%s, %s ended with %s", not, strings.Join(args, " "), st.last.what, st.last)
	}
}

// unixSignalName is "SIGTERM" for syscall.SIGTERM.
func unixSignalName(s syscall.Signal) string {
	if n := signalName(s); n != "" {
		return n
	}
	return s.String()
}

// syncBuffer is a bytes.Buffer that a pipeline's copying goroutine writes
// while waitout reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
