package stage

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// Options are the supervisor's inputs besides the graph.
type Options struct {
	// Stdin, Stdout and Stderr are gpipe's own standard files: the first
	// stage reads Stdin, the last writes Stdout, every stage writes Stderr
	// unless redirected. They are handed to the processes as they are (no
	// copying) and are not closed. None may be nil.
	Stdin, Stdout, Stderr *os.File

	// Grace is how long the stages get, after a teardown signal was passed
	// on to them, before the survivors are killed with SIGKILL. Zero kills
	// at once.
	Grace time.Duration

	// Signals delivers the signals gpipe receives that tear the pipeline
	// down (SIGINT, SIGTERM, SIGHUP, SIGQUIT). Nil means none.
	Signals <-chan os.Signal

	// OnError is told of each stage that could not be started (a failed
	// redirection, say) while the rest run on, as bash reports them. Nil
	// discards them; they are in the Result too.
	OnError func(error)

	// MeasureCPU keeps the CPU time of the in-process builtins (Status.CPU),
	// at the cost of a few system calls each time one waits for another;
	// without it their CPU is reported as zero. A process stage's CPU time
	// is always known.
	MeasureCPU bool
}

// Builtins run inside gpipe (Command.InProcess) as goroutines, each with
// the ends its edges and redirections give it, its own exit status by the
// rules of a program (see finishBuiltin), and its CPU time when asked for
// (see cpuMeter). A teardown
// signal stops them (every wait and every Peek or Reserve of theirs fails,
// and the stage's status is that of a program killed by the signal); one
// still blocked when the grace period ends (in a read of a terminal, say)
// is left behind with status 137, like a process killed with SIGKILL, and
// ends with gpipe. A panic in a builtin is that stage's failure, status
// ExitPanic, with its message on the stage's stderr.

// Run starts every stage of g and waits until all have ended, passing on
// the teardown signals it receives. cmds come from Resolve; plan holds the
// edges' ends, which Run releases (the plan is closed when Run returns).
//
// Process groups: when gpipe runs in the foreground of a terminal, the
// stages stay in gpipe's process group, so that they can use the terminal
// and Ctrl-C or Ctrl-Z from it reach them directly, as under bash. Anywhere
// else (scripts, CI, background jobs) the stages get a process group of
// their own, and teardown signals go to the whole group, reaching the
// stages' own children too.
//
// Every stage is started by one goroutine locked to its OS thread, which
// lives until the last stage has been reaped: Pdeathsig is tied to the
// thread that forked, and it makes the kernel kill every stage if gpipe
// dies, even by SIGKILL.
func Run(g *parser.Graph, cmds []Command, plan *plumbing.Plan, opts Options) *Result {
	defer plan.Close()
	s := &supervisor{
		g:         g,
		cmds:      cmds,
		plan:      plan,
		opts:      opts,
		ownTTY:    foregroundTTY(),
		inherited: inheritedFDs(),
		res:       newResult(g),
		exits:     make(chan exit, len(g.Stages)),
		running:   map[int]*os.Process{},
		inproc:    map[int]bool{},
		left:      map[int]bool{},
		stop:      plumbing.NewStop(),
	}
	started, reaped := make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s.startAll()
		close(started)
		<-reaped
	}()
	<-started
	s.supervise()
	close(reaped)
	if len(s.left) == 0 {
		_ = s.stop.Release() // no builtin is left to watch it
	}
	return s.res
}

type supervisor struct {
	g         *parser.Graph
	cmds      []Command
	plan      *plumbing.Plan
	opts      Options
	ownTTY    bool  // stages share gpipe's process group (terminal foreground)
	inherited []int // descriptors gpipe inherited, handed on to every stage
	pgid      int   // the stages' own process group, when !ownTTY and one started
	res       *Result

	exits   chan exit
	running map[int]*os.Process // by stage index; only touched by supervise after startAll
	inproc  map[int]bool        // in-process stages still running, by stage index
	stop    *plumbing.Stop      // closed at a teardown signal: stops the in-process stages

	left map[int]bool // in-process stages left running after the grace period
}

// exit is how one stage ended: a process (state, err) or an in-process
// builtin (builtin).
type exit struct {
	stage   int
	state   *os.ProcessState
	err     error
	builtin *builtinExit
}

// startAll starts the stages in order, each with its descriptors, and
// closes gpipe's copies of each stage's ends right after its start, so no
// stage holds a pipe end it was not given. Nothing is reaped before every
// stage has started: the first stage leads the stages' process group, and
// while it is unreaped (if only a zombie) the group exists for the others
// to join.
func (s *supervisor) startAll() {
	for i, st := range s.g.Stages {
		var p *os.Process
		var status Status
		if s.cmds[i].InProcess {
			status = s.startBuiltin(st, s.cmds[i])
			if status.Started {
				s.inproc[i] = true
			}
		} else {
			p, status = s.start(st, s.cmds[i])
		}
		s.res.Statuses[i] = status
		if status.Err != nil && s.opts.OnError != nil {
			s.opts.OnError(status.Err)
		}
		if !status.Started {
			s.plan.Exited(i)
		}
		_ = s.plan.Release(i)
		if p != nil {
			s.running[i] = p
		}
	}
	for i, p := range s.running {
		go func() {
			state, err := p.Wait()
			s.exits <- exit{stage: i, state: state, err: err}
		}()
	}
}

func (s *supervisor) start(st *parser.Stage, cmd Command) (*os.Process, Status) {
	status := Status{Stage: st}
	fail := func(code int, err error) (*os.Process, Status) {
		status.Code, status.Err = code, fmt.Errorf("%s: %w", st.Name(), err)
		return nil, status
	}
	t := newFDTable(s.opts.Stdin, s.opts.Stdout, s.opts.Stderr, s.plan.Ends(st.ID), s.inherited)
	defer t.close()
	spec := childSpec{Stage: st.Name(), Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Builtin: cmd.Builtin, Parent: os.Getpid()}
	if fifos := s.plan.FIFORedirects(st.ID); len(fifos) > 0 || blockingRedirect(st) {
		// The stage's own process opens its redirections (its named
		// FIFOs first, where its edges would be); see RunChild.
		spec.Redirs, spec.FIFOs = append(fifos, st.Redirs...), len(fifos)
		for _, r := range spec.Redirs {
			t.reserve(r.FD) // a ring's or the helper's descriptor must not be there
		}
	} else {
		for _, r := range st.Redirs {
			if err := t.apply(r); err != nil {
				return fail(1, err)
			}
		}
		if cmd.Path == "" && cmd.Builtin == "" {
			return nil, status // only redirections: done, like bash
		}
	}
	for fd := range 3 {
		if t.closed[fd] {
			spec.Closed = append(spec.Closed, fd)
		}
	}
	for _, e := range s.plan.Ends(st.ID) {
		if e.Ring != nil {
			spec.Rings = append(spec.Rings, childRing{FD: e.FD, Writer: e.Ring.Writer, Mem: t.addAbove(e.Ring.Mem), Sock: t.addAbove(e.Ring.Sock)})
		}
	}
	if spec.Redirs != nil || spec.Builtin != "" {
		helper, err := helperCommand(spec, t)
		if err != nil {
			return fail(125, err)
		}
		cmd = helper
	}
	sys := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if !s.ownTTY {
		sys.Setpgid, sys.Pgid = true, s.pgid
	}
	attr := &os.ProcAttr{Env: cmd.Env, Files: t.procFiles(), Sys: sys}
	p, err := os.StartProcess(cmd.Path, cmd.Args, attr)
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without "#!": bash runs it with a shell, and so do we.
		p, err = os.StartProcess("/bin/sh", append([]string{"sh", cmd.Path}, cmd.Args[1:]...), attr)
	}
	if err != nil {
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		return fail(code, errors.New(errText(err)))
	}
	if !s.ownTTY && s.pgid == 0 {
		s.pgid = p.Pid
	}
	status.Started = true
	return p, status
}

// supervise waits for every started stage, passing teardown signals on and
// killing the survivors once the grace period is over.
func (s *supervisor) supervise() {
	var grace <-chan time.Time
	for len(s.running)+len(s.inproc) > 0 {
		select {
		case e := <-s.exits:
			if s.left[e.stage] {
				// Reported killed at the end of the grace period; that it
				// ended after all (its write broke when the others were
				// killed) changes nothing.
				continue
			}
			delete(s.running, e.stage)
			delete(s.inproc, e.stage)
			s.record(e)
			s.plan.Exited(e.stage)
		case sig := <-s.opts.Signals:
			if s.res.Signal == nil {
				s.res.Signal = sig
				t := time.NewTimer(s.opts.Grace)
				defer t.Stop()
				grace = t.C
			}
			s.forward(sig)
		case <-grace:
			grace = nil
			s.signal(syscall.SIGKILL)
			for i := range s.inproc {
				// Blocked where no stop reaches it: left to end with gpipe.
				s.left[i] = true
				st := &s.res.Statuses[i]
				st.Signal, st.Code = syscall.SIGKILL, 128+int(syscall.SIGKILL)
				delete(s.inproc, i)
			}
		}
	}
	if s.pgid != 0 {
		// The stages are gone; their own children in the group go too,
		// whether the run was torn down or ended by itself: nothing a
		// stage started outlives the pipeline.
		_ = unix.Kill(-s.pgid, unix.SIGKILL)
	}
}

// forward passes a teardown signal on, then SIGCONT so that a stopped stage
// acts on it. In a terminal's foreground, SIGINT and SIGQUIT from the
// keyboard already reached every stage, and are not sent twice.
func (s *supervisor) forward(sig os.Signal) {
	s.stop.Close()
	if s.ownTTY && (sig == syscall.SIGINT || sig == syscall.SIGQUIT) {
		return
	}
	s.signal(sig)
	s.signal(syscall.SIGCONT)
}

// signal sends sig to the stages' process group, or to each running stage
// when they share gpipe's group (os.Process uses a pidfd, so a reaped
// stage's pid is never hit by mistake).
func (s *supervisor) signal(sig os.Signal) {
	if s.pgid != 0 {
		_ = unix.Kill(-s.pgid, sig.(syscall.Signal))
		return
	}
	for _, p := range s.running {
		_ = p.Signal(sig)
	}
}

func (s *supervisor) record(e exit) {
	st := &s.res.Statuses[e.stage]
	if b := e.builtin; b != nil {
		st.Code, st.CPU = b.code, b.cpu
		if b.stopped {
			sig, _ := s.res.Signal.(syscall.Signal)
			st.Signal, st.Code = sig, 128+int(sig)
		}
		st.InputBroken = st.Code == ExitInputBroken
		return
	}
	if e.err != nil {
		st.Code, st.Err = 125, fmt.Errorf("%s: wait: %w", st.Stage.Name(), e.err)
		return
	}
	st.CPU = e.state.UserTime() + e.state.SystemTime()
	ws, ok := e.state.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		st.Signal = ws.Signal()
		st.Code = 128 + int(st.Signal)
		return
	}
	st.Code = e.state.ExitCode()
	st.InputBroken = s.cmds[e.stage].Builtin != "" && st.Code == ExitInputBroken
	if s.cmds[e.stage].Builtin != "" && st.Code == 128+int(syscall.SIGQUIT) && s.res.Signal == syscall.SIGQUIT {
		// A builtin's helper process ends by SIGQUIT with this status
		// (see quitLikeAProgram): shown as the quit it is.
		st.Signal = syscall.SIGQUIT
	}
}

// foregroundTTY reports whether gpipe's process group is the foreground
// group of its controlling terminal.
func foregroundTTY() bool {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// sinks marks the stages whose stdout no edge takes and that share no
// other stage's: they write to gpipe's own output (or wherever they were
// redirected).
func sinks(g *parser.Graph) []bool {
	out := make([]bool, len(g.Stages))
	for i, st := range g.Stages {
		out[i] = true
		for _, in := range st.Inherits {
			if in.FD == 1 {
				out[i] = false
			}
		}
	}
	for _, e := range g.Edges {
		if e.From.FD == 1 {
			out[e.From.Stage] = false
		}
	}
	return out
}
