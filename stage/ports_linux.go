package stage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/plumbing"
)

// fdPath returns the descriptor a path names in the process that opens it:
// "/dev/fd/N" and "/proc/self/fd/N" name N, "/dev/stdin", "/dev/stdout" and
// "/dev/stderr" name 0, 1 and 2. A process substitution expands to such a
// path. gpipe opens some paths for a stage in its own process (the
// redirections of a stage, the FILE arguments of an in-process builtin),
// where these names would mean gpipe's own descriptors: it looks them up in
// the stage's table instead.
func fdPath(path string) (int, bool) {
	switch path {
	case "/dev/stdin":
		return 0, true
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if n, ok := strings.CutPrefix(path, dir); ok && allDigits(n) {
			fd, err := strconv.Atoi(n)
			return fd, err == nil
		}
	}
	return 0, false
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// reopen opens f anew, as opening "/dev/fd/N" for f's N would in the
// stage's process: a pipe or FIFO gets a new description of the same pipe
// (which never blocks), a file a new one with its own offset (O_TRUNC
// truncates it), as the kernel does through /proc.
func reopen(f *os.File, flag int) (*os.File, error) {
	return os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), flag, 0o666)
}

// handsOver reports whether a port's descriptor fd, opened by a builtin
// with flag, is handed to the builtin as it is rather than opened anew: a
// pipe or socket opened the way its end already goes, where a new
// description would differ in nothing but in keeping the pipe open after
// the builtin closed it. A file is opened anew (its own offset, O_TRUNC).
func handsOver(fd, flag int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
		return false
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE == flag&unix.O_ACCMODE
}

// reopenOpen is reopen of a file the builtin may be closing meanwhile: it
// fails, rather than open another file that took the number, once f is
// closed.
func reopenOpen(f *os.File, flag int) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var g *os.File
	var openErr error
	if err := rc.Control(func(fd uintptr) {
		g, openErr = os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(fd)), flag, 0o666)
	}); err != nil {
		return nil, err
	}
	return g, openErr
}

// isInherited reports whether gpipe's own descriptor fd is one it
// inherited from its parent (not close-on-exec), which every stage gets too.
func isInherited(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil && flags&unix.FD_CLOEXEC == 0
}

// portFiles is how an in-process builtin opens its FILE arguments (see
// builtins.Files): a "/dev/fd/N" among them is port N of the stage, a ring
// end or a copy of the descriptor the stage's table holds at N; any other
// name is a file. It owns what it holds, and close releases what the
// builtin did not open, so that the peer of an unused port sees EOF or a
// broken pipe.
type portFiles struct {
	mu      sync.Mutex // a builtin may open its files from several goroutines
	sources map[int]plumbing.Source
	sinks   map[int]plumbing.Sink
	files   map[int]*os.File // copies of the stage's descriptors, by number
	taken   map[int]*os.File // pipe ports handed to the builtin (see handsOver)
	stop    *plumbing.Stop
	opened  []io.Closer // handed out: closed at the end if the builtin did not
	dir     string      // where a relative name is: the stage's directory (Command.Dir)

	// outputs is what the builtin's fan-out reported of its outputs.
	outputs []builtins.OutputStats

	// fifoCopies, when not nil, keeps a copy of each named FIFO the
	// builtin opened for writing, by path, for noReader (--stop-early).
	fifoCopies map[string]*os.File
}

// noReader reports whether the named FIFO at path, which the builtin
// opened for writing, has no reader left; known is false if the builtin
// has not opened it (or ended).
func (p *portFiles) noReader(path string) (gone, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fifoCopies[path]
	if f == nil {
		return false, false
	}
	return pollNoReader(int(f.Fd())), true
}

func newPortFiles(stop *plumbing.Stop) *portFiles {
	return &portFiles{sources: map[int]plumbing.Source{}, sinks: map[int]plumbing.Sink{}, files: map[int]*os.File{}, taken: map[int]*os.File{}, stop: stop}
}

// addRing makes a ring end of the stage's a port at its descriptor.
func (p *portFiles) addRing(e plumbing.End) error {
	switch {
	case e.Reader != nil:
		e.Reader.SetStop(p.stop)
		p.sources[e.FD] = e.Reader
	case e.Writer != nil:
		e.Writer.SetStop(p.stop)
		p.sinks[e.FD] = e.Writer
	case e.Ring != nil && e.Ring.Writer:
		w, err := plumbing.OpenRingWriter(e.Ring.Mem, e.Ring.Sock)
		if err != nil {
			return err
		}
		w.SetStop(p.stop)
		p.sinks[e.FD] = w
	case e.Ring != nil:
		r, err := plumbing.OpenRingReader(e.Ring.Mem, e.Ring.Sock)
		if err != nil {
			return err
		}
		r.SetStop(p.stop)
		p.sources[e.FD] = r
	}
	return nil
}

// namesStd reports which of the standard descriptors 0, 1 and 2 an
// argument names by path ("tee /dev/stderr"): only those the builtin may
// open are kept, since a kept copy holds its pipe open (a reader waiting
// for the end of the stage's output would wait for the stage's end).
func namesStd(args []string) (named [3]bool) {
	for _, a := range args {
		if fd, ok := fdPath(a); ok && fd <= 2 {
			named[fd] = true
		}
	}
	return named
}

// ReportOutputs keeps what a fan-out builtin's outputs queued
// (builtins.OutputReporter), for Status.Outputs.
func (p *portFiles) ReportOutputs(stats []builtins.OutputStats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outputs = stats
}

// keep stores a copy of the stage's descriptor fd.
func (p *portFiles) keep(fd int, f *os.File) error {
	n, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return fmt.Errorf("descriptor %d: %w", fd, err)
	}
	p.files[fd] = os.NewFile(uintptr(n), f.Name())
	return nil
}

func (p *portFiles) Open(name string) (plumbing.Source, error) {
	p.mu.Lock()
	fd, isFD := fdPath(name)
	if src, ok := p.sources[fd]; isFD && ok {
		delete(p.sources, fd)
		p.opened = append(p.opened, src)
		p.mu.Unlock()
		return src, nil
	}
	p.mu.Unlock()
	f, err := p.open(name, fd, isFD, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	src := plumbing.NewFileSource(f)
	src.SetStop(p.stop)
	if fi, err := f.Stat(); err == nil && fi.Mode()&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0 {
		src.WatchReads() // a FIFO or terminal no teardown closes
		if !isFD && fi.Mode()&fs.ModeNamedPipe != 0 {
			// A named FIFO, opened without waiting for a writer (see
			// openFIFO): read now, it would be at its end.
			src.WaitFirstWriter()
		}
	}
	p.mu.Lock()
	p.opened = append(p.opened, src)
	p.mu.Unlock()
	return src, nil
}

func (p *portFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	p.mu.Lock()
	fd, isFD := fdPath(name)
	if sink, ok := p.sinks[fd]; isFD && ok {
		delete(p.sinks, fd)
		p.opened = append(p.opened, sink)
		p.mu.Unlock()
		return sink, nil
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	p.mu.Unlock()
	// Without the lock: opening a FIFO waits for its reader, and the
	// builtin's other outputs must not wait with it.
	f, err := p.open(name, fd, isFD, flag)
	if err != nil {
		return nil, err
	}
	sink := plumbing.NewFileSink(f)
	p.mu.Lock()
	p.opened = append(p.opened, sink)
	p.mu.Unlock()
	return sink, nil
}

// open opens a name that is no ring port: the stage's descriptor it names,
// or a file.
func (p *portFiles) open(name string, fd int, isFD bool, flag int) (*os.File, error) {
	if isFD {
		p.mu.Lock()
		f, ok := p.files[fd]
		_, in := p.sources[fd]
		_, out := p.sinks[fd]
		if ok && handsOver(int(f.Fd()), flag) {
			// The builtin's end becomes the only one gpipe holds, so that
			// when the builtin closes it (a tee output with every byte),
			// the peer sees end of file then, not when the builtin ends:
			// the join of a diamond may wait for it.
			delete(p.files, fd)
			p.taken[fd] = f
			p.mu.Unlock()
			return f, nil
		}
		p.mu.Unlock()
		if ok {
			g, err := reopen(f, flag)
			if err != nil {
				return nil, &fs.PathError{Op: "open", Path: name, Err: errors.Unwrap(err)}
			}
			return g, nil
		}
		p.mu.Lock()
		f = p.taken[fd]
		p.mu.Unlock()
		if f != nil {
			// Opened again while the first is open: a new description
			// of the same pipe, as /dev/fd/N gives. Once the builtin has
			// closed the first, there is no descriptor N left to open.
			g, err := reopenOpen(f, flag)
			if err != nil {
				return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EBADF}
			}
			return g, nil
		}
		switch {
		case in || out:
			// A ring port the other way round, or one already taken.
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
		case !isInherited(fd):
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
		}
	}
	path := inDir(p.dir, name)
	if fi, err := os.Stat(path); err == nil && fi.Mode()&fs.ModeNamedPipe != 0 {
		return p.openFIFO(name, path, flag)
	}
	return openAs(name, path, flag)
}

// openAs opens the file at path, which the user named name (path is name
// in the stage's directory, see inDir), as os.OpenFile does; its errors,
// and those of its reads and writes, name it name.
func openAs(name, path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o666)
	if path == name {
		return f, err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		pe.Path = name
	}
	if err != nil {
		return nil, err
	}
	// A copy of the descriptor under the user's name. Through Control,
	// not Fd, which would take a FIFO out of the runtime's poller: the
	// copy shares its non-blocking mode, and NewFile puts it back.
	rc, err := f.SyscallConn()
	n := -1
	if err == nil {
		ctlErr := rc.Control(func(fd uintptr) { n, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) })
		err = errors.Join(ctlErr, err)
	}
	f.Close()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(n), name), nil
}

// openFIFO opens a named FIFO without blocking in open(2), where no
// teardown could reach the builtin: a read end opens at once, and its
// first read waits for the first writer, heeding the Stop (see Open); a
// write end is retried until a reader has opened, or the Stop is closed.
func (p *portFiles) openFIFO(name, path string, flag int) (*os.File, error) {
	for {
		f, err := openAs(name, path, flag|unix.O_NONBLOCK)
		if err == nil {
			p.keepFIFO(name, f, flag)
			return f, nil // os.File waits in the runtime's poller, which a Close ends
		}
		if !errors.Is(err, syscall.ENXIO) || flag&(os.O_WRONLY|os.O_RDWR) == 0 {
			return nil, err
		}
		if p.stop.Stopped() {
			return nil, plumbing.ErrStopped
		}
		time.Sleep(fifoRetry)
	}
}

// keepFIFO keeps a copy of a FIFO opened for writing, when asked to.
func (p *portFiles) keepFIFO(name string, f *os.File, flag int) {
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fifoCopies == nil || p.fifoCopies[name] != nil {
		return
	}
	if n, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3); err == nil {
		p.fifoCopies[name] = os.NewFile(uintptr(n), name)
	}
}

// fifoRetry is how often a builtin tries again to open a FIFO for writing
// while it has no reader.
const fifoRetry = 10 * time.Millisecond

// close releases every port and copy the builtin did not take, and closes
// what it took and left open.
func (p *portFiles) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sources {
		s.Close()
	}
	for _, s := range p.sinks {
		s.Close()
	}
	for _, f := range p.files {
		f.Close()
	}
	for _, c := range p.opened {
		c.Close()
	}
	for _, f := range p.fifoCopies {
		f.Close()
	}
	p.sources, p.sinks, p.files, p.taken, p.opened, p.fifoCopies = nil, nil, nil, nil, nil, nil
}
