package stage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// ChildArg is the first argument of a gpipe process that runs as the
// helper of one stage: cmd/gpipe hands such a process to RunChild. The
// second argument is the number of the descriptor that holds the helper's
// instructions, JSON-encoded in a memfd: a descriptor rather than an
// environment string, which the kernel caps at 128 KiB, so that a large
// environment passes through.
const ChildArg = "--gpipe-stage-child"

// childSpec is what a helper process does: apply Redirs in order, then
// run the builtin named Builtin over its descriptors and Rings, or execute
// Path with Args and Env.
type childSpec struct {
	Stage   string // "stage 2 (cat)", for messages
	Redirs  []parser.Redirect
	Path    string
	Args    []string
	Env     []string
	Builtin string
	Rings   []childRing
	// Closed lists the standard descriptors (0, 1, 2) the stage has
	// closed (gpipe's own, closed when it started, or closed by the
	// stage's redirections): the Go runtime opens /dev/null on them
	// before a builtin could notice, so the builtin is told, and a
	// program is started with them closed again.
	Closed []int
	// FIFOs is how many of the first Redirs open the stage's named FIFOs
	// (plumbing.Plan.FIFORedirects). One that is gone because the other
	// side ended without opening it is an empty input, or for a writer a
	// reader gone: status 141, as for a broken pipe.
	FIFOs int
	// Parent is gpipe's pid: the helper dies with it (see execStage).
	Parent int
	// Report is the helper's end of its report pipe to gpipe, which
	// learns there whether the stage started (see report_linux.go); 0:
	// none, and a start that fails is reported on stderr only.
	Report int
}

// childRing is a ring end a builtin finds at descriptors Mem and Sock, in
// place of its descriptor FD.
type childRing struct {
	FD        int
	Writer    bool
	Mem, Sock int
}

// blockingRedirect reports whether opening one of the stage's redirection
// targets may block: a FIFO's open waits for its other end. bash opens
// redirections in the stage's own process, so one stage waiting there
// holds up no other; gpipe then does the same, through a helper process,
// instead of opening the target itself. A relative target is in dir, the
// stage's (Command.Dir).
func blockingRedirect(dir string, st *parser.Stage) bool {
	for _, r := range st.Redirs {
		if _, ok := fdPath(r.Path); ok {
			continue // a descriptor of the stage's own, not a FIFO by name
		}
		if _, isFile := openFlags(r.Op); isFile {
			if fi, err := os.Stat(inDir(dir, r.Path)); err == nil && fi.Mode()&fs.ModeNamedPipe != 0 {
				return true
			}
		}
	}
	return false
}

// helperCommand is the command that runs gpipe itself as a helper process
// doing what spec says. The instructions go into a memfd that t hands to
// the helper above all its other descriptors, and closes after the start.
func helperCommand(spec childSpec, t *fdTable) (Command, error) {
	self, err := os.Executable()
	if err != nil {
		return Command{}, fmt.Errorf("find gpipe's own executable: %w", err)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return Command{}, err
	}
	fd, err := unix.MemfdCreate("gpipe-stage", unix.MFD_CLOEXEC)
	if err != nil {
		return Command{}, fmt.Errorf("helper instructions: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gpipe-stage")
	t.owned = append(t.owned, f)
	if _, err := f.Write(data); err != nil {
		return Command{}, fmt.Errorf("helper instructions: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Command{}, fmt.Errorf("helper instructions: %w", err)
	}
	n := t.addAbove(f)
	// argv[0] stays "gpipe": a test binary playing gpipe dispatches on it.
	// The stage's name, last, is for ps and its readers only.
	return Command{Path: self, Args: []string{"gpipe", ChildArg, strconv.Itoa(n), spec.Stage}, Env: spec.Env}, nil
}

// readSpec reads the helper's instructions from descriptor arg and closes
// it, with system calls only (see applyRaw).
func readSpec(arg string) (childSpec, error) {
	var spec childSpec
	fd, err := strconv.Atoi(arg)
	if err != nil || fd < 3 {
		return spec, fmt.Errorf("bad instructions descriptor %q", arg)
	}
	defer unix.Close(fd)
	var data []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return spec, err
		}
		if n == 0 {
			break
		}
		data = append(data, buf[:n]...)
	}
	return spec, json.Unmarshal(data, &spec)
}

// RunChild is the whole life of a helper process; args are its arguments
// after ChildArg: the instructions' descriptor, and the stage's name. It
// applies the stage's redirections in order, opening files itself (a
// FIFO's open blocks here, in this process only), then replaces itself
// with the stage's program, or runs the builtin. It returns only if that
// fails, with the exit status to end with: 1 for a failed redirection, as
// in bash, ExitNotExecutable or ExitNotFound for a program that cannot
// run (see startFailure); or when the builtin has run, with its status.
//
// reg is where the helper finds its builtin, by the name the pipeline was
// resolved with (Resolve): the helper is a new run of the same binary, so
// its main passes the registry that binary resolves pipelines with. A
// builtin reg does not hold fails with ExitCannotStart.
func RunChild(args []string, stderr io.Writer, reg map[string]*builtins.Builtin) int {
	quitting := quitLikeAProgram()
	if len(args) != 2 {
		fmt.Fprintf(stderr, "gpipe: %s: want two arguments, the instructions' descriptor and the stage\n", ChildArg)
		return ExitCannotStart
	}
	spec, err := readSpec(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "gpipe: %s: bad helper instructions: %v\n", ChildArg, err)
		return ExitCannotStart
	}
	h := &helper{spec: spec, stderr: stderr}
	if spec.Report > 0 {
		// An exec that succeeds closes it: the stage started.
		unix.CloseOnExec(spec.Report)
	}
	for i, r := range spec.Redirs {
		var err error
		if i < spec.FIFOs {
			err = openFIFO(r)
		} else {
			err = applyRaw(r, h.created)
		}
		if err != nil && i < spec.FIFOs && errors.Is(err, syscall.ENOENT) {
			if r.Op != parser.RedirRead {
				return ExitBrokenPipe
			}
			err = applyRaw(parser.Redirect{FD: r.FD, Op: parser.RedirRead, Path: os.DevNull}, nil)
		}
		if err != nil {
			return h.failed(redirectCode(err), err, spec.Redirs[:i])
		}
	}
	if spec.Builtin != "" {
		return runBuiltin(h, reg[spec.Builtin], quitting)
	}
	if spec.Path == "" {
		h.started()
		return 0 // a stage of redirections only
	}
	for _, fd := range spec.Closed {
		_ = unix.Close(fd) // the runtime's /dev/null, not the stage's
	}
	err = execStage(spec)
	code, text := startFailure(spec.Path, err)
	return h.failed(code, errors.New(spec.Path+": "+text), nil)
}

// helper is what a helper process knows as it starts its stage: its
// instructions, and its standard error as it was when it started.
type helper struct {
	spec   childSpec
	stderr io.Writer
}

// created tells gpipe of a file that a redirection is about to create.
func (h *helper) created(path string) {
	if h.spec.Report > 0 {
		_ = childReport{Created: path}.send(h.spec.Report)
	}
}

// started tells gpipe that the stage runs (a builtin) or has done all it
// had to (redirections only): the report pipe is closed.
func (h *helper) started() {
	if h.spec.Report > 0 {
		_ = unix.Close(h.spec.Report)
		h.spec.Report = 0
	}
}

// failed reports that the stage did not start, with status code, because
// of err, and returns code; done are the redirections performed before
// the one that failed, if one did. The message is worded as for a stage
// gpipe could not start itself (bashError), and goes where gpipe writes
// it then (see supervisor.start): a failed redirection's to the stage's
// standard error if the redirections before it moved it (this process's
// descriptor 2, as redirected so far), as bash writes it; any other to
// gpipe, which reports it on its own standard error, whatever the
// redirections: a program that cannot run may abandon the whole run
// (Options.FailFast), and the stage's standard error may be a pipe whose
// reader goes with it.
func (h *helper) failed(code int, err error, done []parser.Redirect) int {
	msg := bashError(h.spec.Stage, code, err).Error()
	moved := stderrMoved(done)
	if moved {
		fmt.Fprintf(h.stderr, "gpipe: %s\n", msg)
	}
	sent := h.spec.Report > 0 && childReport{Failed: true, Code: code, Text: msg, Reported: moved}.send(h.spec.Report) == nil
	if !moved && !sent {
		fmt.Fprintf(h.stderr, "gpipe: %s\n", msg)
	}
	return code
}

// execStage replaces the helper with the stage's program, which must die
// with gpipe as a stage started directly does. The parent-death signal
// gpipe set belongs to the helper's first thread only (the kernel gives a
// new thread none), and execve keeps that of the thread calling it, which
// in a Go program may be any: so the calling thread is pinned and given
// the signal again, and if gpipe is already gone the helper ends here.
func execStage(spec childSpec) error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return err
	}
	if spec.Parent != 0 && unix.Getppid() != spec.Parent {
		os.Exit(ExitSignalled(syscall.SIGKILL))
	}
	err := unix.Exec(spec.Path, spec.Args, spec.Env)
	if errors.Is(err, syscall.ENOEXEC) {
		sh, args := shellFallback(spec.Path, spec.Args)
		err = unix.Exec(sh, args, spec.Env)
	}
	return err
}

// applyRaw performs one redirection on this process's own descriptors,
// with system calls only: nothing here may start the Go runtime's poller,
// whose descriptor a redirection could overwrite. A file it is about to
// create is told to created first, when created is not nil.
func applyRaw(r parser.Redirect, created func(path string)) error {
	flags, isFile := openFlags(r.Op)
	switch r.Op {
	case parser.RedirClose:
		_ = unix.Close(r.FD)
		return nil
	case parser.RedirDup:
		if _, err := unix.FcntlInt(uintptr(r.DupFD), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("%d: %s", r.DupFD, errText(syscall.EBADF))
		}
		return moveFD(r.DupFD, r.FD, false)
	}
	if !isFile {
		return fmt.Errorf("redirection %d is not supported", r.Op)
	}
	var st unix.Stat_t
	if created != nil && flags&unix.O_CREAT != 0 && unix.Lstat(r.Path, &st) == unix.ENOENT {
		// Told before, so that a helper killed in the open leaves no
		// file untold.
		created(r.Path)
	}
	fd, err := openRetry(r.Path, flags|unix.O_CLOEXEC)
	if err != nil {
		return &openError{r.Path, err}
	}
	return moveFD(fd, r.FD, true)
}

// openFIFO opens a named FIFO of the stage's at r.FD: for reading or for
// writing, and never creating anything (a FIFO already removed must not
// become a file).
func openFIFO(r parser.Redirect) error {
	flags := unix.O_RDONLY
	if r.Op != parser.RedirRead {
		flags = unix.O_WRONLY
	}
	fd, err := openRetry(r.Path, flags|unix.O_CLOEXEC)
	if err != nil {
		return &openError{r.Path, err}
	}
	return moveFD(fd, r.FD, true)
}

// openError is a redirection target that could not be opened; it reads
// like bash's "out/x: No such file or directory".
type openError struct {
	path string
	err  error
}

func (e *openError) Error() string { return e.path + ": " + errText(e.err) }
func (e *openError) Unwrap() error { return e.err }

// moveFD makes to a copy of from that survives exec, closing from when
// closeFrom is set.
func moveFD(from, to int, closeFrom bool) error {
	if from == to {
		_, err := unix.FcntlInt(uintptr(to), unix.F_SETFD, 0)
		return err
	}
	if err := unix.Dup3(from, to, 0); err != nil {
		return fmt.Errorf("%d: %s", to, errText(err))
	}
	if closeFrom {
		_ = unix.Close(from)
	}
	return nil
}

// openRetry opens path, retrying when a signal interrupts a blocking open.
func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0o666)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// runBuiltin runs b, the builtin of h's stage, in a helper process over
// its rings, or its descriptors 0 and 1 where it has no ring, and returns
// its exit status (see finishBuiltin). A nil b is a builtin the helper
// does not know.
func runBuiltin(h *helper, b *builtins.Builtin, quitting <-chan struct{}) int {
	spec, stderr := h.spec, h.stderr
	if b == nil {
		return h.failed(ExitCannotStart, fmt.Errorf("no builtin %q", spec.Builtin), nil)
	}
	run, err := b.Parse(spec.Args[1:])
	if err != nil {
		return h.failed(2, fmt.Errorf("%s: %w", spec.Stage, err), nil)
	}
	var in plumbing.Source
	var out plumbing.Sink
	files := &childFiles{sources: map[int]plumbing.Source{}, sinks: map[int]plumbing.Sink{}}
	defer files.close()
	for _, r := range spec.Rings {
		mem, sock := os.NewFile(uintptr(r.Mem), "ring"), os.NewFile(uintptr(r.Sock), "ring socket")
		var err error
		switch {
		case r.Writer && r.FD == 1:
			out, err = plumbing.OpenRingWriter(mem, sock)
		case !r.Writer && r.FD == 0:
			in, err = plumbing.OpenRingReader(mem, sock)
		case r.Writer:
			files.sinks[r.FD], err = plumbing.OpenRingWriter(mem, sock)
		default:
			files.sources[r.FD], err = plumbing.OpenRingReader(mem, sock)
		}
		mem.Close()
		sock.Close()
		if err != nil {
			return h.failed(ExitCannotStart, err, nil)
		}
	}
	for _, fd := range spec.Closed {
		// Reading or writing a closed descriptor fails, as in a program.
		switch fd {
		case 0:
			in = closedEnd{"standard input"}
		case 1:
			out = closedEnd{"standard output"}
		}
	}
	if in == nil {
		in = plumbing.NewFileSource(os.NewFile(0, "stdin"))
	}
	if out == nil {
		// A copy of descriptor 1: the Go runtime kills a program by
		// SIGPIPE for a broken pipe on descriptor 1 itself, and the
		// builtin reports it as status 141 instead.
		fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return h.failed(ExitCannotStart, fmt.Errorf("standard output: %w", err), nil)
		}
		sink := plumbing.NewFileSink(os.NewFile(uintptr(fd), "stdout"))
		// Descriptor 1 itself must not hold the pipe open once the
		// builtin closed its output: its reader may be waiting for the
		// end (the join of a diamond) while the builtin writes on
		// elsewhere. It then goes to /dev/null. (Until then it stays,
		// where --stop-early looks for the stage's output.)
		sink.OnClose(func() { _ = devNullOver(1) })
		out = sink
	}
	plumbing.FlushBeforeWait(in, out)
	h.started()
	err = run(in, out, files)
	if errors.Is(err, plumbing.ErrWriterDied) && quitting != nil {
		select {
		case <-quitting:
			select {} // the exit by SIGQUIT is under way
		case <-time.After(quitGrace):
		}
	}
	return finishBuiltin(spec.Stage, err, in, out, stderr)
}

// devNullOver points descriptor fd at /dev/null.
func devNullOver(fd int) error {
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	return unix.Dup3(null, fd, unix.O_CLOEXEC)
}

// childFiles is how a builtin in a helper process opens its FILE
// arguments: a ring port by its "/dev/fd/N", a pipe port by handing over
// descriptor N itself (see handsOver), anything else as a file (the
// process has the stage's descriptors at their numbers). close releases
// the ring ports the builtin did not take.
type childFiles struct {
	mu      sync.Mutex // a builtin may open its files from several goroutines
	sources map[int]plumbing.Source
	sinks   map[int]plumbing.Sink
	taken   map[int]*os.File // pipe ports handed over
}

func (c *childFiles) Open(name string) (plumbing.Source, error) {
	if fd, ok := fdPath(name); ok {
		c.mu.Lock()
		src, ok := c.sources[fd]
		delete(c.sources, fd)
		c.mu.Unlock()
		if ok {
			return src, nil
		}
		if f, err := c.handOver(fd, os.O_RDONLY); f != nil || err != nil {
			if err != nil {
				return nil, &fs.PathError{Op: "open", Path: name, Err: err}
			}
			return plumbing.NewFileSource(f), nil
		}
	}
	return builtins.OSFiles{}.Open(name)
}

func (c *childFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	if fd, ok := fdPath(name); ok {
		c.mu.Lock()
		sink, ok := c.sinks[fd]
		delete(c.sinks, fd)
		c.mu.Unlock()
		if ok {
			return sink, nil
		}
		if f, err := c.handOver(fd, os.O_WRONLY); f != nil || err != nil {
			if err != nil {
				return nil, &fs.PathError{Op: "open", Path: name, Err: err}
			}
			return plumbing.NewFileSink(f), nil
		}
	}
	return builtins.OSFiles{}.Create(name, appendTo)
}

// handOver returns the process's own descriptor fd (above 2) for the
// builtin to own, when it is a pipe port opened the way it goes (see
// handsOver), or a new description of it when the builtin opens it again;
// nil when fd is no such port.
func (c *childFiles) handOver(fd, flag int) (*os.File, error) {
	if fd <= 2 {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.taken[fd]; f != nil {
		if g, err := reopenOpen(f, flag); err == nil {
			return g, nil
		}
		return nil, syscall.EBADF
	}
	if !handsOver(fd, flag) {
		return nil, nil
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "/dev/fd/"+strconv.Itoa(fd))
	if c.taken == nil {
		c.taken = map[int]*os.File{}
	}
	c.taken[fd] = f
	return f, nil
}

func (c *childFiles) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sources {
		s.Close()
	}
	for _, s := range c.sinks {
		s.Close()
	}
}

// finishBuiltin closes a builtin's ends after its run returned err, and
// turns the outcome into its exit status, as for a program: 0; 141,
// silently, when its reader went away (as a program killed by SIGPIPE);
// ExitInputBroken when its input ring's writer died; the status a
// builtins.ExitError carries, silently; 1 for anything else, with a
// message on stderr.
func finishBuiltin(stage string, err error, in plumbing.Source, out plumbing.Sink, stderr io.Writer) int {
	err = errors.Join(err, out.Close())
	in.Close()
	var exit *builtins.ExitError
	switch {
	case err == nil:
		return 0
	case plumbing.IsBrokenPipe(err):
		return ExitBrokenPipe
	case errors.As(err, &exit):
		return exit.Code // a program it ran, which spoke for itself
	}
	fmt.Fprintf(stderr, "gpipe: %s: %v\n", stage, err)
	if errors.Is(err, plumbing.ErrWriterDied) {
		return ExitInputBroken
	}
	return 1
}

// closedEnd is a builtin's input or output that a redirection closed.
type closedEnd struct{ what string }

func (c closedEnd) err() error                  { return fmt.Errorf("%s: %w", c.what, syscall.EBADF) }
func (c closedEnd) Peek(int) ([]byte, error)    { return nil, c.err() }
func (c closedEnd) Release(int)                 {}
func (c closedEnd) MaxPeek() int                { return 1 }
func (c closedEnd) Reserve(int) ([]byte, error) { return nil, c.err() }
func (c closedEnd) Commit(int)                  {}
func (c closedEnd) Flush() error                { return nil }
func (c closedEnd) MaxReserve() int             { return 1 }
func (c closedEnd) Close() error                { return nil }

// quitLikeAProgram makes SIGQUIT end the helper as it ends a program that
// does not catch it, status 131, rather than with the Go runtime's
// goroutine dump (hundreds of lines on the terminal) and status 2, the
// code of a bad spec. No core is dumped, as none of gpipe's own is worth
// one. An ignored SIGQUIT stays ignored, and a program the helper execs
// gets the disposition back to the default.
//
// The returned channel is closed once SIGQUIT has come, just before the
// exit; it is nil when SIGQUIT is ignored.
func quitLikeAProgram() <-chan struct{} {
	if signal.Ignored(syscall.SIGQUIT) {
		return nil
	}
	quit := make(chan os.Signal, 1)
	quitting := make(chan struct{})
	signal.Notify(quit, syscall.SIGQUIT)
	go func() {
		<-quit
		close(quitting)
		os.Exit(ExitSignalled(syscall.SIGQUIT))
	}()
	return quitting
}

// quitGrace is how long a builtin whose input's writer died waits for a
// SIGQUIT that may have reached them both at once (Ctrl-\ to the group):
// the writer died of it, and this helper must end by it too, 131, not by
// the broken input its own signal raced (status 3, seen on a loaded
// machine).
const quitGrace = 200 * time.Millisecond
