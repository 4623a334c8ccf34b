package stage

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The process-group model. Every process of a pipeline (stages, helpers
// and the stages' own children) runs in one process group of its own,
// never gpipe's: teardown and job-control signals go to the whole group,
// and nothing outside it is hit. When gpipe runs in the foreground of a
// terminal, it hands that group the terminal (tcsetpgrp), as a shell does
// for a job, so that Ctrl-C, Ctrl-\ and Ctrl-Z from the keyboard reach
// every process of the pipeline once, and gpipe takes the terminal back
// when the pipeline ends or stops.
//
// The group is led by a guardian: a small gpipe process, started before
// the first stage, that waits for gpipe to go, and tells gpipe of each
// teardown signal that reaches the group (the builtins inside gpipe, which
// is not in the group, would not hear Ctrl-C otherwise). It holds a pipe
// whose only writer is gpipe; when that pipe reports end of file, gpipe is
// gone (even by SIGKILL, which no handler sees) and the guardian kills the
// whole group with SIGKILL, itself included. When the pipeline ends
// normally, gpipe kills the group itself, guardian included, so that no
// child a stage left behind (`sh -c "sleep 300 &"`) outlives it. While the
// guardian lives, the group exists and its id cannot be reused. A pipeline
// of builtins inside gpipe alone starts no process, and no guardian.
//
// The guardian comes first, on the critical path, because anything later
// leaves a window. Started after the stages (tried in issue 18), it made
// `gpipe '/bin/true | /bin/true | /bin/true'` take 1.43 to 1.55 times
// bash's time instead of 1.69 (no guardian at all: 1.36 to 1.45); but a
// SIGKILL of gpipe between the first stage's start and the guardian's fork
// left alive any child a stage had started by then (the stages themselves
// die by Pdeathsig): the start-stress test caught one in twenty runs. The
// cheaper guards do not close that window: PR_SET_CHILD_SUBREAPER makes
// gpipe adopt orphans while it lives, not kill them when it dies; a pidfd
// is held by the one who watches, which gpipe cannot be for itself. Only a
// process forked before the first stage closes it: this Go re-exec, or a
// raw fork of gpipe's address space (0.92 of the time in a prototype, but
// a Go program cannot safely run code in a fork without exec), or a tiny
// static guardian (a binary per architecture shipped inside gpipe).
//
// What cannot be covered at all: a process that leaves the group (setsid,
// a daemon that double-forks into a session of its own) escapes, as it
// escapes a shell's job control.

// GuardianArg is the first argument of a gpipe process that runs as the
// guardian of a pipeline's process group: cmd/gpipe hands such a process
// to RunGuardian.
const GuardianArg = "--gpipe-guardian"

// groupSignals are the teardown signals the guardian passes on to gpipe
// when they reach the pipeline's process group: Ctrl-C and Ctrl-\ from the
// terminal, a hangup of it, or a kill of the whole group. The builtins
// inside gpipe are not in the group, so this is how they hear such a
// signal, as the programs beside them do.
var groupSignals = [...]syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP}

// RunGuardian is the whole life of a guardian: it outlives every signal a
// job gets from its terminal or from gpipe's teardown, telling gpipe of
// each teardown signal that reaches the group (one byte, the signal's
// number, on descriptor 1, a pipe to gpipe) unless it was ignored when the
// guardian started (as the stages inherit it ignored), waits until
// descriptor 0, a pipe from gpipe, reports end of file, and kills its own
// process group.
func RunGuardian() int {
	signal.Ignore(syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2)
	heard := make(chan os.Signal, len(groupSignals))
	for _, sig := range groupSignals {
		if signal.Ignored(sig) {
			continue // Notify would undo the ignoring
		}
		signal.Notify(heard, sig)
	}
	go func() {
		for sig := range heard {
			// gpipe gone: the read below sees it too.
			_, _ = unix.Write(1, []byte{byte(sig.(syscall.Signal))})
		}
	}()
	var b [64]byte
	for {
		n, err := unix.Read(0, b[:])
		if err == unix.EINTR || (err == nil && n > 0) {
			continue
		}
		break
	}
	_ = unix.Kill(0, unix.SIGKILL)
	return 0
}

// guardian leads and watches over the pipeline's process group.
type guardian struct {
	pid  int
	pipe *os.File // gpipe's end: closing it (or gpipe's death) ends the group
	// heard gets each teardown signal that reached the group (see
	// RunGuardian); it is never closed, and may drop a signal that
	// comes while one is still waiting to be taken.
	heard chan syscall.Signal
}

// startGuardian starts the guardian in a new process group, which it
// leads; with tty set it also makes that group the terminal's foreground
// group. Its standard output is a pipe that gpipe reads for the signals
// it hears, and its error /dev/null: it must hold no pipe a caller waits
// on.
func startGuardian(tty *terminal) (*guardian, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find gpipe's own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	hr, hw, err := os.Pipe()
	if err != nil {
		w.Close()
		return nil, err
	}
	defer hw.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		w.Close()
		hr.Close()
		return nil, err
	}
	defer null.Close()
	sys := &syscall.SysProcAttr{Setpgid: true}
	if tty != nil {
		sys.Foreground, sys.Ctty = true, tty.fd
	}
	pid, err := startProcess(self, []string{"gpipe", GuardianArg}, nil, "", []*os.File{r, hw, null}, sys)
	if err != nil {
		w.Close()
		hr.Close()
		return nil, fmt.Errorf("the guardian of the pipeline's process group: %w", err)
	}
	g := &guardian{pid: pid, pipe: w, heard: make(chan syscall.Signal, 1)}
	go g.listen(hr)
	return g, nil
}

// listen passes on what the guardian tells on r until it ends, then
// closes r.
//
// The pipe is read in blocking mode, on a thread of its own, not in the
// runtime's poller: a goroutine parked there for the whole run makes every
// idle thread of the scheduler poll for it (epoll_pwait at each wake-up),
// which cost a third more CPU on a fast tee through pipes.
func (g *guardian) listen(r *os.File) {
	defer r.Close()
	_ = r.Fd() // blocking mode from here on
	var b [16]byte
	for {
		n, err := r.Read(b[:])
		for _, c := range b[:n] {
			select {
			case g.heard <- syscall.Signal(c):
			default: // one waits already: a teardown is a teardown
			}
		}
		if err != nil {
			return
		}
	}
}

// end lets the guardian go, once gpipe has killed the group: it is reaped
// in the background, so that gpipe's exit does not wait for it.
func (g *guardian) end() {
	g.pipe.Close()
	go func() {
		for {
			if _, err := unix.Wait4(g.pid, nil, 0, nil); err != unix.EINTR {
				return
			}
		}
	}()
}

// terminal is gpipe's controlling terminal, kept open while the pipeline
// runs so that gpipe can hand it to the pipeline's group and take it back.
type terminal struct {
	fd int
}

// openTerminal opens gpipe's controlling terminal, or returns nil when it
// has none.
func openTerminal() *terminal {
	fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	return &terminal{fd: fd}
}

func (t *terminal) close() { _ = unix.Close(t.fd) }

// foreground returns the terminal's foreground process group.
func (t *terminal) foreground() int {
	pgrp, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	return pgrp
}

// ours reports whether gpipe's own process group is in the foreground.
func (t *terminal) ours() bool { return t.foreground() == unix.Getpgrp() }

// give makes pgrp the terminal's foreground group. gpipe may be in the
// background when it does (taking the terminal back from the pipeline's
// group), where the kernel would stop it with SIGTTOU: the signal is
// blocked for the thread making the call, which the kernel accepts.
func (t *terminal) give(pgrp int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	sigaddset(&set, unix.SIGTTOU)
	if unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old) != nil {
		return
	}
	_ = unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, pgrp)
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}

func sigaddset(set *unix.Sigset_t, sig syscall.Signal) {
	n := uint(sig) - 1
	set.Val[n/64] |= 1 << (n % 64)
}

// orphaned reports whether gpipe's process group is orphaned: no process
// outside it in the same session (a shell) is the parent of a member, so
// nobody would continue it if it stopped, and the kernel discards a stop
// signal from the terminal there. It looks at gpipe's parent only: one in
// another session (init, after gpipe's own parent died) makes it orphaned.
func orphaned() bool {
	psid, err1 := unix.Getsid(unix.Getppid())
	sid, err2 := unix.Getsid(0)
	return err1 != nil || err2 != nil || psid != sid
}

// stopSelf stops gpipe by sig, as a program that does not catch it stops,
// and returns once gpipe is continued. The signal is sent to the calling
// thread, so it takes effect before the call returns; sig must be one
// whose action is the default, stopping (see supervisor.jobStop).
func stopSelf(sig syscall.Signal) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
}

// stopped reports whether process pid is stopped now, by its state in
// /proc.
func stopped(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && (data[i+2] == 'T' || data[i+2] == 't')
}
