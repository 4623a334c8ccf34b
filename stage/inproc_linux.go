package stage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// builtinExit is how an in-process builtin ended.
type builtinExit struct {
	code    int
	stopped bool // it ended because the pipeline was torn down
	busy    time.Duration
	outputs []builtins.OutputStats
}

// startBuiltin starts an in-process builtin stage: its ends are taken from
// the plan, its redirections applied to a table of descriptors the way a
// process would get them, and its standard input, output and error become
// a Source, a Sink and a writer over copies of those descriptors. Nothing
// here blocks: a stage whose redirection may block runs as a process.
func (s *supervisor) startBuiltin(st *parser.Stage, cmd Command) Status {
	status := Status{Stage: st}
	ends := s.plan.Take(st.ID)
	t := newFDTable(s.opts.Stdin, s.opts.Stdout, s.stderr(st.ID), ends, nil)
	t.dir = cmd.Dir
	defer t.close()
	defer func() {
		for _, e := range ends {
			if e.File != nil || e.Ring != nil {
				e.Close() // the builtin holds its own copies, or maps the ring
			}
		}
	}()
	var in plumbing.Source
	var out plumbing.Sink
	var stderr io.WriteCloser
	stop := s.builtinStop(st.ID)
	files := newPortFiles(stop)
	files.dir = cmd.Dir
	if s.opts.StopEarly {
		files.fifoCopies = map[string]*os.File{}
		s.nodes[st.ID].ports = files
	}
	// Until the goroutine owns them, a failure closes what was made.
	owned := []io.Closer{}
	fail := func(code int, err error) Status {
		for _, c := range owned {
			c.Close()
		}
		files.close()
		for _, e := range ends {
			if e.Writer != nil || e.Reader != nil {
				e.Close() // the peer sees EOF or a broken pipe
			}
		}
		status.Code, status.Err = code, fmt.Errorf("%s: %w", st.Name(), err)
		return status
	}
	for _, r := range st.Redirs {
		if err := t.apply(r); err != nil {
			failed := fail(redirectCode(err), err)
			failed.Err = bashError(st.Name(), failed.Code, err)
			failed.Reported = t.reportRedirect(s.stderr(st.ID), failed.Err)
			return failed
		}
	}
	for _, e := range ends {
		var err error
		switch {
		case e.Reader != nil && e.FD == 0:
			in = e.Reader
		case e.Writer != nil && e.FD == 1:
			out = e.Writer
		case e.Ring != nil && e.FD == 0 && !e.Ring.Writer:
			in, err = plumbing.OpenRingReader(e.Ring.Mem, e.Ring.Sock)
		case e.Ring != nil && e.FD == 1 && e.Ring.Writer:
			out, err = plumbing.OpenRingWriter(e.Ring.Mem, e.Ring.Sock)
		default:
			err = files.addRing(e)
		}
		if err != nil {
			return fail(ExitCannotStart, err)
		}
	}
	// The descriptors the builtin may open by path: its ports and
	// redirections above 2, and its standard ones if an argument names
	// them ("tee /dev/stderr").
	std := namesStd(cmd.Args)
	for fd, f := range t.files {
		if fd > 2 || std[fd] {
			if err := files.keep(fd, f); err != nil {
				return fail(ExitCannotStart, err)
			}
		}
	}
	if in != nil {
		owned = append(owned, in)
	}
	if out != nil {
		owned = append(owned, out)
	}
	dup := func(fd int) (*os.File, error) {
		f := t.files[fd]
		if f == nil {
			return nil, nil
		}
		n, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("descriptor %d: %w", fd, err)
		}
		if fd <= 1 && fdIsPipe(n) {
			// A builtin's standard input or output on a pipe waits in the
			// runtime's poller, in non-blocking mode, where a teardown
			// ends its read or write (see plumbing.Stop) however long
			// whoever holds the other end waits (a grandchild left
			// running, a program that ignores the signal and reads
			// nothing). The mode belongs to the pipe end's open file
			// description: one that only the builtin holds is switched;
			// one that others share (gpipe's own stdin or stdout, an end
			// a process substitution inherits) is opened anew for the
			// builtin alone, or, if that fails, left as it is.
			if fromEdge(t, ends, fd) && !sharesEnd(s.g, st, fd) {
				_ = unix.SetNonblock(n, true)
			} else if m, err := reopenNonblock(n, fd); err == nil {
				_ = unix.Close(n)
				n = m
			}
		}
		return os.NewFile(uintptr(n), f.Name()), nil
	}
	if in == nil {
		f, err := dup(0)
		if err != nil {
			return fail(ExitCannotStart, err)
		}
		in = closedEnd{"standard input"}
		if f != nil {
			fs := plumbing.NewFileSource(f)
			if !fromEdge(t, ends, 0) || s.opts.StopEarly {
				// gpipe's own stdin or a redirection: no teardown ends its
				// writer, so a wait in a read must heed the stop. So must
				// a read of an edge when the stage may be stopped early,
				// while its writer runs on.
				fs.WatchReads()
			}
			in = fs
			owned = append(owned, in)
		}
	}
	if out == nil {
		f, err := dup(1)
		if err != nil {
			return fail(ExitCannotStart, err)
		}
		out = closedEnd{"standard output"}
		if f != nil {
			out = plumbing.NewFileSink(f)
			owned = append(owned, out)
		}
	}
	stderr = nopCloser{io.Discard}
	if f := t.files[2]; f != nil && f == s.opts.Stderr {
		// gpipe's own stderr: one copy for every builtin, not one
		// descriptor each.
		shared, err := s.sharedStderr()
		if err != nil {
			return fail(ExitCannotStart, err)
		}
		stderr = nopCloser{shared}
	} else if f, err := dup(2); err != nil {
		return fail(ExitCannotStart, err)
	} else if f != nil {
		stderr = f
	}
	for _, end := range []any{in, out} {
		if e, ok := end.(plumbing.Stoppable); ok {
			e.SetStop(stop)
		}
	}
	plumbing.FlushBeforeWait(in, out)
	if s.opts.StopEarly {
		s.keepOutCopies(st.ID, ends)
	}
	go s.runBuiltin(st, cmd, in, out, stderr, files)
	status.Started, status.Began = true, time.Now()
	return status
}

// runBuiltin is the goroutine of an in-process builtin. With
// Options.MeasureBusy, its busy time is kept by a busyMeter over the
// stretches it runs between its parks.
func (s *supervisor) runBuiltin(st *parser.Stage, cmd Command, in plumbing.Source, out plumbing.Sink, stderr io.WriteCloser, files *portFiles) {
	busy := busyMeter{on: s.opts.MeasureBusy}
	if busy.on {
		for _, end := range []any{in, out} {
			if e, ok := end.(plumbing.Parkable); ok {
				e.OnPark(busy.pause, busy.resume)
			}
		}
	}
	busy.resume()
	res := &builtinExit{}
	defer func() {
		busy.pause()
		res.busy = busy.total
		res.outputs = files.outputs
		files.close()
		stderr.Close()
		s.exits <- exit{stage: st.ID, builtin: res}
	}()
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(stderr, "gpipe: %s: internal error: %v\n", st.Name(), v)
			if w, ok := out.(*plumbing.RingWriter); ok {
				w.Abandon() // the reader sees its input broken off
			} else {
				out.Close()
			}
			in.Close()
			res.code = ExitPanic
		}
	}()
	err := cmd.run(in, out, files)
	res.stopped = errors.Is(err, plumbing.ErrStopped)
	if res.stopped {
		out.Close()
		in.Close()
		return
	}
	res.code = finishBuiltin(st.Name(), err, in, out, stderr)
}

// busyMeter keeps the busy time of one builtin goroutine: the wall time
// between its resumes and pauses (a pause comes before each wait on a ring
// and each read or write of a pipe or file), for a clock read each and no
// system call. A builtin has no CPU clock of its own that is cheap to
// read: a thread's clock at every wait cost up to a third of a builtin's
// time on a fast stream, and locking the goroutine to a thread three
// times that; --stats shares gpipe's own CPU time among the builtins by
// their busy time instead.
type busyMeter struct {
	on      bool
	total   time.Duration
	resumed time.Time
}

func (m *busyMeter) resume() {
	if m.on {
		m.resumed = time.Now()
	}
}

func (m *busyMeter) pause() {
	if m.on {
		m.total += time.Since(m.resumed)
	}
}

// fromEdge reports whether descriptor fd of the table t is still the file
// one of the stage's edges gave it (no redirection replaced it).
func fromEdge(t *fdTable, ends []plumbing.End, fd int) bool {
	for _, e := range ends {
		if e.FD == fd && e.File != nil && t.files[fd] == e.File {
			return true
		}
	}
	return false
}

// sharedStderr returns the copy of gpipe's stderr that the builtins inside
// gpipe write to, made at its first use and closed once the pipeline has
// ended. A copy, not descriptor 2 itself: the Go runtime kills a program
// by SIGPIPE for a broken pipe on descriptor 2.
func (s *supervisor) sharedStderr() (*os.File, error) {
	if s.stderrCopy == nil {
		n, err := unix.FcntlInt(s.opts.Stderr.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("descriptor 2: %w", err)
		}
		s.stderrCopy = os.NewFile(uintptr(n), s.opts.Stderr.Name())
	}
	return s.stderrCopy, nil
}

// sharesEnd reports whether stage st's descriptor fd, an edge's end, is
// also another stage's: one that inherits it (a process substitution
// writes to its parent's stdout), or the one it inherits. No mode of such
// a description may change under the other.
func sharesEnd(g *parser.Graph, st *parser.Stage, fd int) bool {
	for _, in := range st.Inherits {
		if in.FD == fd {
			return true
		}
	}
	for _, other := range g.Stages {
		for _, in := range other.Inherits {
			if in.From.Stage == st.ID && in.From.FD == fd {
				return true
			}
		}
	}
	return false
}

// fdIsPipe reports whether descriptor fd is a pipe or FIFO.
func fdIsPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// reopenNonblock opens the pipe or FIFO behind descriptor n anew, in
// non-blocking mode, for reading as standard input (fd 0) or for writing
// as standard output: a description of the builtin's own. Opening for
// writing fails (ENXIO) when nothing reads the pipe.
func reopenNonblock(n, fd int) (int, error) {
	flag := unix.O_RDONLY
	if fd == 1 {
		flag = unix.O_WRONLY
	}
	return unix.Open("/proc/self/fd/"+strconv.Itoa(n), flag|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
