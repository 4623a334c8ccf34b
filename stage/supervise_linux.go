package stage

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// Options are the supervisor's inputs besides the graph.
type Options struct {
	// Stdin, Stdout and Stderr are gpipe's own standard files: the first
	// stage reads Stdin, the last writes Stdout, every stage writes Stderr
	// unless redirected. They are handed to the processes as they are (no
	// copying) and are not closed. Nil is a descriptor closed: the stages
	// that would get it start with it closed, as bash gives a stage the
	// descriptor it was itself started without, so that reading or
	// writing it fails ("Bad file descriptor") rather than losing data.
	Stdin, Stdout, Stderr *os.File

	// Stderrs, when not nil, gives each stage a standard error of its
	// own: stage i of Graph.Stages starts with Stderrs[i] as its
	// descriptor 2 in place of Stderr, before its redirections are
	// applied, so that "2>/dev/null" and "2>&1" mean what they mean in
	// bash. A nil entry, or a stage past the end of the slice, gets
	// Stderr. A stage's process substitutions are stages of their own
	// and get their own entries. The files are handed on as they are
	// (an in-process builtin writes to a copy of its file) and are not
	// closed: the caller may close its copies once Start has returned.
	Stderrs []*os.File

	// Grace is how long the stages get, after a teardown signal was passed
	// on to them, before the survivors are killed with SIGKILL. Zero kills
	// at once.
	Grace time.Duration

	// Signals delivers the signals gpipe receives that tear the pipeline
	// down (SIGINT, SIGTERM, SIGHUP, SIGQUIT), and SIGUSR1, which asks
	// for a live status (OnLive) instead. Nil means none.
	Signals <-chan os.Signal

	// OnLive is given a snapshot of the running pipeline each time
	// SIGUSR1 arrives. Nil ignores the signal.
	OnLive func(*Snapshot)

	// OnEvent is told of every stage that starts, stops, continues or
	// ends, one event at a time, from gpipe's own goroutines: it must
	// not block. Nil tells nobody.
	OnEvent func(Event)

	// OnError is told of each stage that could not be started (a failed
	// redirection, say), as bash reports them, except a failed
	// redirection whose message went to the stage's own standard error
	// (Status.Reported). Nil discards them; they are in the Result too.
	OnError func(error)

	// FailFast makes a stage that cannot be started for want of a program
	// that runs (status 126 or 127) or of gpipe's own resources (125:
	// descriptors, memory, processes) abandon the whole start: the stages
	// not yet started never start, those started are killed, the files
	// their redirections created are removed, and that stage's status is
	// the run's. Without it, the rest run on, as in bash. A failed
	// redirection of the user's (a missing input file: status 1) never
	// stops the others, as in bash.
	FailFast bool

	// StopEarly stops a stage as soon as nothing reads its output any
	// more, rather than at its next write, as bash does: a program gets
	// SIGPIPE, so `sh -c 'echo a; sleep 30; echo b' | head -1` ends at
	// once; a builtin, whose every output has lost its reader, stops as if
	// by SIGPIPE, which frees its own writer in turn, through rings and
	// fan-outs (see early_linux.go). Off by default, because it changes
	// what bash gives when such a stage would still have written to
	// stderr or exited with a status of its own (`sh -c 'yes; exit 5' |
	// head -1`).
	StopEarly bool

	// MeasureBusy keeps the busy time of the in-process builtins
	// (Status.Busy): the wall time each ran between its waits, for two
	// clock reads per wait. Their CPU time is not kept (Status.CPU is zero
	// for them): see busyMeter.
	MeasureBusy bool

	// MeasureIO keeps what each process stage read and wrote (Status.IO,
	// from /proc/PID/io), read at each Snapshot while it runs and once more
	// when it has ended, just before it is reaped, so that the last
	// figures are its totals; and a Snapshot tells where a process sleeps
	// (StageState.Wchan). It costs a system call and a read of /proc per
	// process at its end, none while data flows. Without it, Status.IO
	// is unknown.
	MeasureIO bool

	// JobControl makes the run a job of gpipe's terminal, as a shell's
	// pipeline is: the pipeline's process group gets the terminal when
	// gpipe has it in the foreground, and a stop (Ctrl-Z, SIGTSTP to
	// gpipe, a stage reading the terminal from the background) stops the
	// pipeline and then gpipe (see Start). It catches SIGTSTP for the
	// process while the run lasts: a command line wants it, a program
	// that runs pipelines of its own asks for it. Without it, the
	// terminal and SIGTSTP are left alone, and the stages run in a
	// process group of their own that never has the terminal.
	JobControl bool
}

// Builtins run inside gpipe (Command.InProcess) as goroutines, each with
// the ends its edges and redirections give it, its own exit status by the
// rules of a program (see finishBuiltin), and its busy time when asked for
// (see busyMeter). A teardown
// signal stops them (every wait and every Peek or Reserve of theirs fails,
// and the stage's status is that of a program killed by the signal, also
// in a read or write of a pipe, see startBuiltin); one still blocked when
// the grace period ends (in a write to a terminal that does not drain, say)
// is left behind with status 137, like a process killed with SIGKILL, and
// ends with gpipe. A panic in a builtin is that stage's failure, status
// ExitPanic, with its message on the stage's stderr.

// Run starts every stage of g and waits until all have ended, passing on
// the teardown signals it receives: Start, then Wait. cmds come from
// Resolve; plan holds the edges' ends, which Run releases (the plan is
// closed when Run returns).
func Run(g *parser.Graph, cmds []Command, plan *plumbing.Plan, opts Options) *Result {
	return Start(g, cmds, plan, opts).Wait()
}

// Pipeline is a started pipeline, which can be observed and steered while
// it runs, as an exec.Cmd between Start and Wait.
type Pipeline struct {
	s    *supervisor
	done chan struct{} // closed when every stage has ended and the plan is closed
}

// Start starts every stage of g and returns once all have been started
// (or the start was abandoned); a goroutine then supervises them until
// they have ended. See Run.
//
// Process groups: every process of the pipeline runs in a group of its
// own, led by a guardian, which gets the terminal when gpipe has it (see
// group_linux.go). Teardown and job-control signals go to the whole group,
// reaching the stages' own children too.
//
// Job control, with Options.JobControl: when gpipe has a controlling terminal, a stage stopped by a
// signal (Ctrl-Z, or reading the terminal from the background) stops the
// whole pipeline, then gpipe itself, so that the calling shell sees a stopped job; SIGTSTP sent to
// gpipe does the same. When gpipe is continued (fg, bg, SIGCONT) it
// continues the pipeline, handing it the terminal again if gpipe is in the
// foreground by then.
//
// Every stage is started by one goroutine locked to its OS thread, which
// lives until the last stage has been reaped: Pdeathsig is tied to the
// thread that forked, and it makes the kernel kill every stage if gpipe
// dies, even by SIGKILL.
func Start(g *parser.Graph, cmds []Command, plan *plumbing.Plan, opts Options) *Pipeline {
	s := &supervisor{
		g:         g,
		cmds:      cmds,
		plan:      plan,
		opts:      opts,
		inherited: inheritedFDs(),
		res:       newResult(g),
		exits:     make(chan exit, 2*len(g.Stages)),
		nodes:     make([]node, len(g.Stages)),
		outCopies: map[int]*os.File{},
		ctl:       make(chan func()),
	}
	if opts.JobControl {
		s.tty = openTerminal()
	}
	if s.tty != nil {
		s.foreground = s.tty.ours()
	}
	if opts.JobControl && !signal.Ignored(syscall.SIGTSTP) {
		s.tstp = make(chan os.Signal, 1)
		signal.Notify(s.tstp, syscall.SIGTSTP)
	}
	p := &Pipeline{s: s, done: make(chan struct{})}
	started, reaped := make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s.startAll()
		close(started)
		<-reaped
	}()
	<-started
	go func() {
		s.supervise()
		close(reaped)
		for _, n := range s.nodes {
			if n.stop != nil && !n.left {
				_ = n.stop.Release() // no builtin is left to watch it
			}
		}
		for _, f := range s.outCopies {
			f.Close()
		}
		if s.stderrCopy != nil {
			s.stderrCopy.Close()
		}
		if s.tstp != nil {
			signal.Stop(s.tstp)
		}
		if s.tty != nil {
			s.tty.close()
		}
		_ = plan.Close()
		close(p.done)
	}()
	return p
}

// Wait waits until every stage has ended and returns how the run ended.
func (p *Pipeline) Wait() *Result {
	<-p.done
	return p.s.res
}

// Snapshot returns the pipeline as it stands: while it runs, taken by the
// supervising goroutine between two events; once it has ended, the final
// state.
func (p *Pipeline) Snapshot() *Snapshot {
	reply := make(chan *Snapshot, 1)
	select {
	case p.s.ctl <- func() { reply <- p.s.snapshot() }:
		return <-reply
	case <-p.done:
		return p.s.snapshot()
	}
}

// Group is the id of the pipeline's process group, which its processes
// (stages, helpers, and their own children) run in, led by the guardian
// (see group_linux.go); 0 if it has none: no process started (only
// builtins inside gpipe). It is the group's id until Wait returns; the
// group is gone then, and the id may be reused.
func (p *Pipeline) Group() int {
	return p.s.pgid // set during the start only, which Start waited for
}

// Signal acts on sig as when gpipe receives it (Options.Signals): a
// teardown signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) tears the pipeline
// down, SIGUSR1 asks for a live status (Options.OnLive); any other signal
// is sent to every process of the pipeline as it is, SIGSTOP and SIGCONT
// to stop and continue them (builtins inside gpipe go on). It does nothing
// once the pipeline has ended.
func (p *Pipeline) Signal(sig syscall.Signal) {
	select {
	case p.s.ctl <- func() { p.s.onSignal(sig) }:
	case <-p.done:
	}
}

type supervisor struct {
	g         *parser.Graph
	cmds      []Command
	plan      *plumbing.Plan
	opts      Options
	inherited []int // descriptors gpipe inherited, handed on to every stage
	res       *Result

	tty        *terminal      // gpipe's controlling terminal; nil if it has none
	foreground bool           // gpipe was in the terminal's foreground at the start
	gaveTTY    bool           // the pipeline's group was given the terminal
	guard      *guardian      // leads and watches the pipeline's process group (see group)
	pgid       int            // that group
	tstp       chan os.Signal // SIGTSTP sent to gpipe; nil if it was ignored at the start
	grace      <-chan time.Time

	exits chan exit
	// nodes holds what the supervisor knows of each stage as it runs,
	// by stage index: one record a stage. Only startAll, then the
	// supervising goroutine, touch it.
	nodes []node
	// outCopies holds, under Options.StopEarly, a copy of each pipe or
	// FIFO end an in-process stage writes to, by edge index, to ask the
	// kernel whether the edge still has a reader (see stopEarly).
	outCopies map[int]*os.File

	// stderrCopy is the copy of Options.Stderr that the builtins inside
	// gpipe write to (see sharedStderr).
	stderrCopy *os.File

	ctl       chan func() // work for the supervising goroutine: Pipeline's methods
	abandoned os.Signal   // a teardown signal that came during the start
	created   []string    // files that the stages' redirections created, for FailFast
}

// node is what the supervisor knows of one stage while the pipeline runs
// (its status so far is in the Result).
type node struct {
	running bool           // a process not reaped yet
	inproc  bool           // an in-process stage still running
	stop    *plumbing.Stop // an in-process stage's own (see stopBuiltins)
	left    bool           // in-process, left running after the grace period
	stopped bool           // a process stopped by a signal now
	// pipeStopped: sent SIGPIPE early (Options.StopEarly), or stopped
	// early if in-process.
	pipeStopped bool
	// ports, under Options.StopEarly, are an in-process stage's port
	// files, which keep copies of the FIFOs it opens to write.
	ports *portFiles
	// report is the report pipe of a stage started through a helper
	// process, which tells whether the stage started after all (see
	// report_linux.go).
	report *startReport
}

// alive counts the stages still running, processes and in-process.
func (s *supervisor) alive() int {
	n := 0
	for _, st := range s.nodes {
		if st.running || st.inproc {
			n++
		}
	}
	return n
}

// exit is how one stage ended, or stopped or continued: a process (ws,
// usage, err) or an in-process builtin (builtin).
type exit struct {
	stage   int
	ws      unix.WaitStatus
	usage   unix.Rusage
	err     error
	io      IO  // the process's last I/O figures, with Options.MeasureIO
	reap    int // the pid of an ended process still to be reaped (see wait)
	builtin *builtinExit
	// report is what the helper process of an ended stage reported
	// (see report_linux.go); nil for a stage without a helper.
	report *startReport
}

// startAll starts the stages in order, each with its descriptors, and
// closes gpipe's copies of each stage's ends right after its start, so no
// stage holds a pipe end it was not given. Nothing is reaped before every
// stage has started: the first stage leads the stages' process group, and
// while it is unreaped (if only a zombie) the group exists for the others
// to join.
func (s *supervisor) startAll() {
	for i, st := range s.g.Stages {
		if !s.abandoning() {
			s.abandoned = s.teardownPending()
		}
		if s.abandoning() {
			s.res.Statuses[i] = Status{Stage: st, Skipped: true}
			s.plan.Exited(i)
			_ = s.plan.Release(i)
			continue
		}
		var status Status
		if err := s.plan.Open(i); err != nil {
			// Out of descriptors: gpipe's own resources, ExitCannotStart.
			status = Status{Stage: st, Code: ExitCannotStart, Err: fmt.Errorf("%s: %w", st.Name(), err)}
		} else if s.cmds[i].InProcess {
			status = s.startBuiltin(st, s.cmds[i])
			if status.Started {
				s.nodes[i].inproc = true
			}
		} else {
			status = s.start(st, s.cmds[i])
		}
		if status.Code == ExitCannotStart && status.Err != nil {
			// Out of descriptors, say: what the pipeline needs, and the limit.
			status.Err = s.plan.WithNeed(status.Err)
		}
		s.res.Statuses[i] = status
		if status.Err != nil && !status.Reported && s.opts.OnError != nil {
			s.opts.OnError(status.Err)
		}
		if status.Err != nil && status.Code >= ExitCannotStart && s.opts.FailFast {
			s.res.FailedStart = i
			// The builtins that started are stopped now, before this
			// stage's ends are released below: its reader gone, a
			// builtin writing to it would otherwise end by a broken
			// pipe first (141, not the killed the processes read as).
			s.stopBuiltins()
		}
		if !status.Started {
			s.plan.Exited(i)
		}
		_ = s.plan.Release(i)
		if status.Started && !s.cmds[i].InProcess {
			s.nodes[i].running = true
		}
		if status.Started {
			s.event(Event{Kind: Started, Stage: i, Pid: status.Pid})
		}
	}
	for i, n := range s.nodes {
		if n.running {
			go s.wait(i, s.res.Statuses[i].Pid, n.report)
		}
	}
}

// abandoning reports whether the start is being abandoned: a teardown
// signal came, or a stage failed to start under FailFast.
func (s *supervisor) abandoning() bool {
	return s.abandoned != nil || s.res.FailedStart >= 0
}

// teardownPending returns a teardown signal that arrived while the
// stages were being started, if one did. A SIGUSR1 then is dropped:
// nothing runs yet to show.
func (s *supervisor) teardownPending() os.Signal {
	select {
	case sig := <-s.opts.Signals:
		if sig == syscall.SIGUSR1 {
			return nil
		}
		return sig
	default:
		return nil
	}
}

// wait reports every change of stage i's process, its stops and
// continues included, until it has ended. It does not reap the process:
// its end is reported with the process left a zombie (exit.reap), and the
// supervisor reaps it (reap) as it marks the stage no longer running, in
// the goroutine that signals stages by pid, so that no signal can reach
// another process that got the pid after it. gpipe thus holds no pidfd
// per running stage (none is opened, see startProcess): a pipeline of
// programs needs no descriptor per stage, as under bash.
//
// Each wait holds an OS thread, blocked in waitid, while its stage runs.
// One waiter for all stages, a prototype blocked in waitid(P_PGID) on the
// pipeline's group, took the same time for three /bin/true and 0.86 to
// 0.92 of it for fifty (medians of 30 to 80 interleaved runs), but it is
// not done: a stage that leaves the group (setsid) would never be seen to
// end; waitid(P_ALL) would take the children of another pipeline started
// in the same process, or another part of it; and a pidfd per stage (in
// one epoll) costs a descriptor per stage, and says nothing of stops.
//
// A stage started through a helper process has its helper's report
// (rep): its end comes with what the helper reported, read to the pipe's
// end, which the helper's end has reached.
func (s *supervisor) wait(i, pid int, rep *startReport) {
	// si_code of a child's change (asm-generic/siginfo.h).
	const cldStopped, cldContinued = 5, 6
	for {
		e := exit{stage: i}
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WCONTINUED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err == nil && (info.Code == cldStopped || info.Code == cldContinued) {
			// Take the stop or continue, never the end: that waits.
			err = unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED|unix.WCONTINUED|unix.WNOHANG, nil)
			if err == nil {
				if e.ws = stopStatus(&info); e.ws != 0 {
					s.exits <- e
				}
				continue
			}
			if err == unix.EINTR || err == unix.ECHILD {
				// ECHILD: it was continued and has ended since the first
				// look, and a wait without WEXITED finds no child to take
				// (seen as 'wait: no child processes', status 125, after
				// a SIGCONT on a loaded machine). The next look sees the
				// end.
				continue
			}
		}
		e.err = err
		if err == nil {
			if s.opts.MeasureIO {
				// A zombie's /proc/PID/io still holds its figures.
				e.io = processIO(pid)
			}
			e.reap = pid
			if rep != nil {
				<-rep.done
				e.report = rep
			}
		}
		s.exits <- e
		return
	}
}

// stopStatus is a stop or continue reported by waitid as a wait status:
// zero if info reports neither (nothing was taken).
func stopStatus(info *unix.Siginfo) unix.WaitStatus {
	const cldStopped, cldContinued = 5, 6
	// si_status: after si_signo, si_errno, si_code, padding, si_pid,
	// si_uid (asm-generic/siginfo.h, for SIGCHLD).
	status := *(*int32)(unsafe.Add(unsafe.Pointer(info), 24))
	switch info.Code {
	case cldStopped:
		return unix.WaitStatus(status<<8 | 0x7f)
	case cldContinued:
		return 0xffff
	}
	return 0
}

// reap reaps the ended process of e, filling in its wait status and
// resource usage.
func (s *supervisor) reap(e *exit) {
	for {
		_, err := unix.Wait4(e.reap, &e.ws, 0, &e.usage)
		if err != unix.EINTR {
			e.err = err
			return
		}
	}
}

func (s *supervisor) start(st *parser.Stage, cmd Command) Status {
	status := Status{Stage: st}
	dir := cmd.Dir // cmd may become the helper below, which runs there too
	fail := func(code int, err error) Status {
		status.Code, status.Err = code, fmt.Errorf("%s: %w", st.Name(), err)
		return status
	}
	// A redirection or a program that fails as it would under bash reads
	// as bash's message: the word, then the system's ("missing: No such
	// file or directory"); see bashError.
	failAsBash := func(code int, err error) Status {
		status.Code, status.Err = code, bashError(st.Name(), code, err)
		return status
	}
	t := newFDTable(s.opts.Stdin, s.opts.Stdout, s.stderr(st.ID), s.plan.Ends(st.ID), s.inherited)
	t.dir = cmd.Dir
	defer t.close()
	spec := childSpec{Stage: st.Name(), Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Builtin: cmd.Builtin, Parent: os.Getpid()}
	if fifos := s.plan.FIFORedirects(st.ID); len(fifos) > 0 || blockingRedirect(cmd.Dir, st) {
		// The stage's own process opens its redirections (its named
		// FIFOs first, where its edges would be); see RunChild.
		spec.Redirs, spec.FIFOs = append(fifos, st.Redirs...), len(fifos)
		for _, r := range spec.Redirs {
			t.reserve(r.FD) // a ring's or the helper's descriptor must not be there
		}
	} else {
		for _, r := range st.Redirs {
			if err := t.apply(r); err != nil {
				failed := failAsBash(redirectCode(err), err)
				failed.Reported = t.reportRedirect(s.stderr(st.ID), failed.Err)
				return failed
			}
		}
		if cmd.Path == "" && cmd.Builtin == "" {
			return status // only redirections: done, like bash
		}
	}
	spec.Closed = closedStd(t, spec.Redirs)
	for _, e := range s.plan.Ends(st.ID) {
		if e.Ring != nil {
			spec.Rings = append(spec.Rings, childRing{FD: e.FD, Writer: e.Ring.Writer, Mem: t.addAbove(e.Ring.Mem), Sock: t.addAbove(e.Ring.Sock)})
		}
	}
	var rep *startReport
	if spec.Redirs != nil || spec.Builtin != "" {
		var err error
		if rep, spec.Report, err = newStartReport(t); err != nil {
			return fail(ExitCannotStart, err)
		}
		defer func() {
			if s.nodes[st.ID].report != rep {
				rep.r.Close() // the helper did not start
			}
		}()
		helper, err := helperCommand(spec, t)
		if err != nil {
			return fail(ExitCannotStart, err)
		}
		cmd = helper
	}
	if s.opts.FailFast {
		s.created = append(s.created, t.created...)
	}
	if err := s.group(); err != nil {
		return fail(ExitCannotStart, err)
	}
	sys := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Pgid: s.pgid}
	files := t.procFiles()
	// The stage's process, or the helper that starts it, runs in the
	// stage's directory, where a relative cmd.Path is.
	pid, err := startProcess(cmd.Path, cmd.Args, cmd.Env, dir, files, sys)
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without "#!": bash runs it with a shell, and so do we.
		sh, args := shellFallback(cmd.Path, cmd.Args)
		pid, err = startProcess(sh, args, cmd.Env, dir, files, sys)
	}
	if err != nil {
		code, text := startFailure(inDir(dir, cmd.Path), err)
		// Reported on gpipe's own stderr, whatever the stage's
		// redirections, as by the helper (see helper.failed).
		return failAsBash(code, errors.New(cmd.Path+": "+text))
	}
	if rep != nil {
		s.nodes[st.ID].report = rep
		go rep.read()
	}
	status.Started, status.Pid, status.Began = true, pid, time.Now()
	return status
}

// startProcess starts the program at path with argv and env (nil: gpipe's
// own environment), in directory dir ("": gpipe's own), with files as its
// descriptors 0, 1, 2, … (nil: that descriptor closed), and returns its
// pid. A relative path is relative to dir. It is syscall.StartProcess, not
// os.StartProcess: gpipe signals and waits for its processes by pid (see
// wait), and os.StartProcess would open a pidfd for each only to close
// it, and, the first time, fork a child more to see whether the system
// has pidfds.
func startProcess(path string, argv, env []string, dir string, files []*os.File, sys *syscall.SysProcAttr) (int, error) {
	if env == nil {
		env = syscall.Environ()
	}
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd() // ^uintptr(0) for nil: closed in the child
	}
	pid, _, err := syscall.StartProcess(path, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: fds, Sys: sys})
	runtime.KeepAlive(files)
	return pid, err
}

// stderr is the standard error stage i starts with, before its
// redirections: its own (Options.Stderrs) or gpipe's.
func (s *supervisor) stderr(i int) *os.File {
	if i < len(s.opts.Stderrs) && s.opts.Stderrs[i] != nil {
		return s.opts.Stderrs[i]
	}
	return s.opts.Stderr
}

// group makes the pipeline's process group before its first process
// starts: the guardian leads it, so that no process of the pipeline ever
// runs unguarded (see group_linux.go), and in the terminal's foreground
// the group gets the terminal at once, before any stage could read it.
func (s *supervisor) group() error {
	if s.guard != nil {
		return nil
	}
	var tty *terminal
	if s.foreground {
		tty = s.tty
	}
	g, err := startGuardian(tty)
	if err != nil {
		return err
	}
	s.guard, s.pgid, s.gaveTTY = g, g.pid, tty != nil
	return nil
}

// supervise waits for every started stage, passing teardown signals on and
// killing the survivors once the grace period is over.
func (s *supervisor) supervise() {
	switch {
	case s.abandoned != nil:
		s.teardown(s.abandoned)
		s.signal(s.abandoned)
		s.signal(syscall.SIGCONT)
	case s.res.FailedStart >= 0:
		s.abandonStart()
	}
	for s.alive() > 0 {
		select {
		case e := <-s.exits:
			if e.reap != 0 {
				// No longer running below, before any other stage is
				// signalled by pid.
				s.reap(&e)
			}
			if e.builtin == nil && e.err == nil {
				s.nodes[e.stage].stopped = e.ws.Stopped()
				switch {
				case e.ws.Stopped():
					s.event(Event{Kind: StoppedBy, Stage: e.stage, Pid: s.res.Statuses[e.stage].Pid, Signal: e.ws.StopSignal()})
				case e.ws.Continued():
					s.event(Event{Kind: Continued, Stage: e.stage, Pid: s.res.Statuses[e.stage].Pid})
				}
			}
			if e.builtin == nil && e.err == nil && e.ws.Stopped() {
				if s.tty != nil && s.nodes[e.stage].running && stopped(s.res.Statuses[e.stage].Pid) {
					// Without a terminal nobody can "fg" the job, and a
					// stopped stage is left to whoever stopped it, as a
					// shell without job control does. A stop already
					// undone (a second stage's, reported after gpipe
					// was continued) is stale.
					s.jobStop(e.ws.StopSignal(), true)
				}
				continue
			}
			if e.builtin == nil && e.err == nil && e.ws.Continued() {
				continue
			}
			if s.nodes[e.stage].left {
				// Reported killed at the end of the grace period; that it
				// ended after all (its write broke when the others were
				// killed) changes nothing.
				continue
			}
			s.nodes[e.stage].running, s.nodes[e.stage].inproc = false, false
			s.dropOutCopies(e.stage)
			s.record(e)
			pid := s.res.Statuses[e.stage].Pid
			if e.report != nil && e.report.failed != nil {
				s.helperFailed(e.stage, e.report)
			}
			s.plan.Exited(e.stage)
			if s.opts.StopEarly {
				s.stopEarly()
			}
			ev := Event{Kind: Exited, Stage: e.stage, Pid: pid, Status: s.res.Statuses[e.stage]}
			if e.builtin == nil && e.err == nil {
				ru := e.usage
				ev.Usage = &ru
			}
			s.event(ev)
			if sig := s.res.Statuses[e.stage].Signal; s.gaveTTY && (sig == syscall.SIGINT || sig == syscall.SIGQUIT) {
				// Ctrl-C or Ctrl-\ on the terminal, which reached every
				// process of the group once, not gpipe: the in-process
				// builtins stop, and gpipe ends by it too.
				s.teardown(sig)
			}
		case sig := <-s.opts.Signals:
			s.onSignal(sig)
		case sig := <-s.groupHeard():
			// A teardown signal reached the pipeline's process group
			// (Ctrl-C on the terminal, say), and every process of it:
			// the builtins inside gpipe get it too, as they would as
			// programs, so that a reader that ignores it still sees its
			// input end. Or the group got gpipe's own teardown signal
			// back, which changes nothing.
			s.teardown(sig)
			// A builtin's helper process started while the signal went
			// out may have joined the group just after it, and missed
			// it (seen once: an --isolate cat left reading a pipe a
			// grandchild held, until --grace). It gets it again: a
			// helper ends at the first, so a second changes nothing.
			// (A program is not sent it twice: it may count them.)
			// By pid: a stage still running is not reaped yet (see
			// wait), so its pid is still its own.
			for i, n := range s.nodes {
				if n.running && s.cmds[i].Builtin != "" {
					_ = unix.Kill(s.res.Statuses[i].Pid, sig)
				}
			}
		case f := <-s.ctl:
			f()
		case <-s.tstp:
			s.jobStop(syscall.SIGTSTP, false)
		case <-s.grace:
			s.grace = nil
			s.signal(syscall.SIGKILL)
			for i := range s.nodes {
				if !s.nodes[i].inproc {
					continue
				}
				// Blocked where no stop reaches it: left to end with gpipe.
				s.nodes[i].left = true
				s.dropOutCopies(i)
				st := &s.res.Statuses[i]
				st.Signal, st.Code = syscall.SIGKILL, ExitSignalled(syscall.SIGKILL)
				s.nodes[i].inproc = false
			}
		}
	}
	if s.res.FailedStart >= 0 {
		// The files the helpers' redirections created, which each
		// reported as it created them: all told once every helper has
		// ended.
		for i, n := range s.nodes {
			rep := n.report
			if rep == nil {
				continue
			}
			<-rep.done
			for _, path := range rep.created {
				// As the helper named it, in the stage's directory.
				_ = os.Remove(inDir(s.cmds[i].Dir, path))
			}
		}
	}
	if s.pgid != 0 {
		// The stages are gone; their own children in the group go too,
		// whether the run was torn down or ended by itself: nothing a
		// stage started outlives the pipeline.
		if s.gaveTTY && s.tty.foreground() == s.pgid {
			s.tty.give(unix.Getpgrp())
		}
		_ = unix.Kill(-s.pgid, unix.SIGKILL)
		if s.guard != nil {
			s.guard.end()
		}
	}
}

// abandonStart ends a start abandoned because a stage could not start
// (Options.FailFast): what started goes at once, and so do the files the
// redirections created.
func (s *supervisor) abandonStart() {
	s.stopBuiltins()
	s.signal(syscall.SIGKILL)
	for _, path := range s.created {
		_ = os.Remove(path)
	}
}

// helperFailed takes the report of stage i's helper process that the
// stage did not start. Its status and message read as those of a stage
// gpipe could not start itself (see start), and under Options.FailFast
// the start is abandoned in the same way, though by now the stages after
// it have started too: they are killed with those before it.
func (s *supervisor) helperFailed(i int, rep *startReport) {
	st := &s.res.Statuses[i]
	rep.notStarted(st)
	if !st.Reported && s.opts.OnError != nil {
		s.opts.OnError(st.Err)
	}
	if st.Code >= ExitCannotStart && s.opts.FailFast && s.res.FailedStart < 0 && s.res.Signal == nil {
		s.res.FailedStart = i
		s.abandonStart()
	}
}

// groupHeard is the channel of the teardown signals that reached the
// pipeline's process group (see RunGuardian); nil while no process runs.
func (s *supervisor) groupHeard() <-chan syscall.Signal {
	if s.guard == nil {
		return nil
	}
	return s.guard.heard
}

// onSignal acts on a signal gpipe received, or Pipeline.Signal sends.
func (s *supervisor) onSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGUSR1:
		if s.opts.OnLive != nil {
			s.opts.OnLive(s.snapshot())
		}
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT:
		s.teardown(sig)
		s.signal(sig)
		s.signal(syscall.SIGCONT)
	default:
		s.signal(sig)
	}
}

// teardown begins the end of the pipeline by sig, once: the in-process
// builtins stop, and the grace period starts, after which the survivors
// are killed.
func (s *supervisor) teardown(sig os.Signal) {
	s.stopBuiltins()
	if s.res.Signal != nil {
		return
	}
	s.res.Signal = sig
	t := time.NewTimer(s.opts.Grace)
	s.grace = t.C
}

// signal sends sig to the pipeline's process group (every process of the
// pipeline, and nothing else), when a process runs.
func (s *supervisor) signal(sig os.Signal) {
	if s.pgid != 0 {
		_ = unix.Kill(-s.pgid, sig.(syscall.Signal))
	}
}

// jobStop stops the whole pipeline and then gpipe, after a stage stopped
// by sig (fromStage) or gpipe got SIGTSTP, and continues the pipeline once
// gpipe is continued. The group already got a stop from the terminal's
// Ctrl-Z and is not sent a second; otherwise it gets SIGTSTP, which a
// program may catch to put the terminal right before it stops. gpipe takes
// the terminal back while stopped, as a shell does, and hands it on again
// if it is in the foreground when continued (fg, not bg).
//
// A process group that nobody outside it can continue (orphaned) must not
// stop: a stage stopped there is torn down by SIGHUP, as the kernel does
// to a group that becomes orphaned with stopped members.
func (s *supervisor) jobStop(sig syscall.Signal, fromStage bool) {
	if orphaned() {
		if fromStage {
			s.teardown(syscall.SIGHUP)
			s.signal(syscall.SIGHUP)
			s.signal(syscall.SIGCONT)
		}
		return
	}
	if !(fromStage && sig == syscall.SIGTSTP && s.gaveTTY) {
		s.signal(syscall.SIGTSTP)
	}
	if s.gaveTTY && s.tty.foreground() == s.pgid {
		s.tty.give(unix.Getpgrp())
	}
	// gpipe stops by the stage's own signal when that stops it: SIGTTIN
	// and SIGTTOU, which it never catches, so that the shell says why.
	// SIGTSTP cannot: once caught, the Go runtime keeps its handler, which
	// ignores the signal, even after signal.Stop; SIGSTOP does instead.
	self := syscall.SIGSTOP
	if (sig == syscall.SIGTTIN || sig == syscall.SIGTTOU) && !signal.Ignored(sig) {
		self = sig
	}
	stopSelf(self)
	// Continued.
	s.gaveTTY = false
	if s.tty != nil && s.pgid != 0 && s.tty.ours() {
		s.tty.give(s.pgid)
		s.gaveTTY = true
	}
	s.signal(syscall.SIGCONT)
}

func (s *supervisor) record(e exit) {
	st := &s.res.Statuses[e.stage]
	st.Ended = time.Now()
	if b := e.builtin; b != nil {
		st.Code, st.Busy, st.Outputs = b.code, b.busy, b.outputs
		if b.stopped && s.nodes[e.stage].pipeStopped && s.res.Signal == nil {
			// Stopped early: as a program killed by SIGPIPE.
			st.Signal, st.Code = syscall.SIGPIPE, ExitBrokenPipe
		} else if b.stopped {
			sig, ok := s.res.Signal.(syscall.Signal)
			if !ok {
				// Stopped by a failed start (FailFast), which kills
				// the processes with SIGKILL: so it reads the same.
				sig = syscall.SIGKILL
			}
			st.Signal, st.Code = sig, ExitSignalled(sig)
		} else if s.opts.StopEarly && b.code == ExitBrokenPipe && s.res.Signal == nil {
			// Under StopEarly, a builtin that found its reader gone
			// itself, a moment before gpipe would have stopped it, reads
			// the same as one stopped: which of the two came first is a
			// race (merge with a line still to write, say).
			st.Signal = syscall.SIGPIPE
		}
		st.InputBroken = st.Code == ExitInputBroken
		return
	}
	if e.err != nil {
		st.Code, st.Err = ExitCannotStart, fmt.Errorf("%s: wait: %w", st.Stage.Name(), e.err)
		return
	}
	st.User, st.System = time.Duration(e.usage.Utime.Nano()), time.Duration(e.usage.Stime.Nano())
	st.CPU = st.User + st.System
	st.MaxRSS = e.usage.Maxrss * 1024 // kilobytes on Linux
	if e.io.Known {
		st.IO = e.io
	}
	if ws := e.ws; ws.Signaled() {
		st.Signal = ws.Signal()
		if st.Signal == syscall.SIGKILL && s.nodes[e.stage].pipeStopped && s.cmds[e.stage].Builtin != "" && s.res.Signal == nil {
			st.Signal = syscall.SIGPIPE // a helper stopped early (see stopEarly)
		}
		st.Code = ExitSignalled(st.Signal)
		return
	}
	st.Code = e.ws.ExitStatus()
	// A builtin that runs programs (a copy of par -k) ends with their
	// statuses, 3 among them, which say nothing of its input.
	st.InputBroken = s.cmds[e.stage].Builtin != "" && !s.cmds[e.stage].Forks && st.Code == ExitInputBroken
	if s.cmds[e.stage].Builtin != "" && st.Code == ExitSignalled(syscall.SIGQUIT) {
		// A builtin's helper process ends by SIGQUIT with this status,
		// and by nothing else (see quitLikeAProgram and finishBuiltin):
		// shown as the quit it is, also when the quit reached the group
		// from the terminal and gpipe has not heard of it yet.
		st.Signal = syscall.SIGQUIT
	}
}

// sinks marks the stages whose stdout no edge takes and that share no
// other stage's: they write to gpipe's own output (or wherever they were
// redirected).
func sinks(g *parser.Graph) []bool {
	out := make([]bool, len(g.Stages))
	for i := range g.Stages {
		out[i] = g.Desc(i, 1).Own
	}
	return out
}
