package plumbing

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

// Options tune how a plan's transports are chosen and made. The zero value
// chooses automatically, with the default sizes.
type Options struct {
	// Transport overrides the choice for every edge: TransportPipe,
	// TransportFIFO, TransportShm or TransportMem. TransportAuto chooses
	// per edge.
	Transport parser.Transport

	// PipeSize is the capacity asked for on each pipe; 0 means
	// DefaultPipeSize within the user's pipe budget (see PipeSizeFor), a
	// negative value leaves the kernel's default.
	PipeSize int

	// RingSize is the data capacity of each ring, shm or mem; 0 means
	// DefaultRingSize.
	RingSize int
}

// StageInfo is what plumbing needs to know of a stage to choose the
// transports of its edges.
type StageInfo struct {
	Name string // how reasons name it: "grep"
	// Rings says the stage can read and write rings on its edges: a
	// builtin. Descriptors listed in Touched cannot be rings even then.
	Rings bool
	// Touched lists the descriptors a redirection of the stage replaces,
	// copies or opens by path ("< /dev/fd/63"): those must be real
	// descriptors. The value says why, after the name: "redirects its
	// stdin".
	Touched map[int]string
	// InProcess says the stage is a builtin that runs inside gpipe, as a
	// goroutine, rather than as a process of its own: two such stages are
	// joined by mem rings, two builtins otherwise by shm rings.
	InProcess bool
	// Why, when Rings is false, says why not, after the name: "is an
	// external program".
	Why string
}

// ringSide is what one end of an edge allows: the stage's info, with Rings
// off and the reason when that end must be a descriptor.
func ringSide(s StageInfo, p parser.Port, shared map[parser.Port]string) StageInfo {
	why, ok := s.Touched[p.FD]
	if !ok {
		why, ok = shared[parser.Port{Stage: p.Stage, FD: p.FD}]
	}
	if ok && s.Rings {
		s.Rings, s.Why = false, why
	}
	return s
}

// TransportError is a transport asked for that an edge cannot have.
type TransportError struct {
	msg  string
	Edge int // index in Graph.Edges of the edge that cannot have it
}

func (e *TransportError) Error() string { return e.msg }

// Choice is the transport of one edge and why.
type Choice struct {
	Transport parser.Transport
	Reason    string
}

// Choose picks the transport of every edge of g, in the order of
// g.Edges, without creating anything:
//   - builtin → builtin, both inside gpipe: mem ring (ordinary memory, no
//     system call while data flows);
//   - builtin → builtin, either in a process of its own: shm ring (one copy
//     per edge, no system call while data flows);
//   - an edge with an external program at either end: anonymous pipe, so
//     that gpipe stays out of the data path;
//   - opts.Transport overrides, where it can: shm needs rings at both ends,
//     mem rings inside gpipe at both ends.
//
// An edge end that another stage shares (parser.Stage.Inherits: a process
// substitution inherits its parent's stdin or stdout, as in bash) must be a
// descriptor, and so is a pipe.
func Choose(g *parser.Graph, stages []StageInfo, override parser.Transport) ([]Choice, error) {
	choices := make([]Choice, len(g.Edges))
	shared := map[parser.Port]string{}
	for _, st := range g.Stages {
		for _, in := range st.Inherits {
			if _, ok := shared[in.From]; !ok {
				shared[in.From] = fmt.Sprintf("shares its %s with %s (a process substitution inherits it, as in bash)",
					in.From, stages[st.ID].Name)
			}
		}
	}
	for i, e := range g.Edges {
		from, to := ringSide(stages[e.From.Stage], e.From, shared), ringSide(stages[e.To.Stage], e.To, shared)
		want := e.Transport
		if _, named := FIFOPath(e); named {
			// The stage was given the FIFO's path as a word: no
			// override can take it back.
			choices[i] = Choice{parser.TransportFIFO, "the stage opens it by its path"}
			continue
		}
		if override != parser.TransportAuto {
			want = override
		}
		switch want {
		case parser.TransportPipe:
			choices[i] = Choice{parser.TransportPipe, "asked for"}
		case parser.TransportFIFO:
			choices[i] = Choice{parser.TransportFIFO, "asked for"}
		case parser.TransportShm:
			for _, s := range []StageInfo{from, to} {
				if !s.Rings {
					return nil, &TransportError{Edge: i, msg: fmt.Sprintf("edge %d (%s → %s): transport shm needs builtins at both ends, and %s %s",
						i+1, from.Name, to.Name, s.Name, s.Why)}
				}
			}
			choices[i] = Choice{parser.TransportShm, "asked for"}
		case parser.TransportMem:
			for _, s := range []StageInfo{from, to} {
				why := s.Why
				if s.Rings && !s.InProcess {
					why = "runs in a process of its own"
				}
				if !s.Rings || !s.InProcess {
					return nil, &TransportError{Edge: i, msg: fmt.Sprintf("edge %d (%s → %s): transport mem needs builtins inside gpipe at both ends, and %s %s",
						i+1, from.Name, to.Name, s.Name, why)}
				}
			}
			choices[i] = Choice{parser.TransportMem, "asked for"}
		case parser.TransportAuto:
			switch {
			case from.Rings && to.Rings && from.InProcess && to.InProcess:
				choices[i] = Choice{parser.TransportMem, "builtin → builtin in one process"}
			case from.Rings && to.Rings:
				choices[i] = Choice{parser.TransportShm, "builtin → builtin in separate processes"}
			case !from.Rings:
				choices[i] = Choice{parser.TransportPipe, from.Name + " " + from.Why}
			default:
				choices[i] = Choice{parser.TransportPipe, to.Name + " " + to.Why}
			}
		default:
			return nil, fmt.Errorf("edge %d: unknown transport %v", i+1, want)
		}
	}
	return choices, nil
}

// Plan holds the open transports of one graph. For every stage it knows the
// descriptors that the stage's edges give it. The plan owns them: the
// supervisor releases a stage's ends once the stage has started (its
// process holds its own copies), and Close releases the rest. A Plan is not
// safe for concurrent use.
type Plan struct {
	ends    [][]End
	Choices []Choice // one per edge, in the order of Graph.Edges

	// Meters are the edges' runtime objects, in the order of
	// Graph.Edges: what each carried so far, where gpipe can see it
	// (nil for a pipe or FIFO). They outlive Close with their last
	// counts.
	Meters []*Meter

	fifoDir string      // the private directory of named FIFOs, if any
	fifos   []namedFIFO // the FIFOs stages open by path

	// Pipes between two stages that share neither end with a third are
	// made when the first of their stages starts (Open), not up front, so
	// that a long pipeline of programs holds a few descriptors at a
	// time, not two per edge.
	edges    []*parser.Edge
	lazy     []bool  // edge i is made by Open
	lazyOf   [][]int // stage i's edges that Open makes
	made     []bool  // edge i exists (or its stages are gone)
	released []bool  // stage i's ends were released
	pipeSize int
	need     Need // what the plan needs at most, for a limit's message
}

// namedFIFO is an edge whose two stages open a FIFO by its path: the one
// whose argument it is (a process substitution under --transport fifo)
// and, through its helper process, the other, whose stdin or stdout it is.
// Each open waits for the other side's, as bash's do; see Exited for why
// neither can wait for ever.
type namedFIFO struct {
	path       string
	stages     [2]int          // the two stages
	redirStage int             // the stage that opens it as a redirection
	redir      parser.Redirect // that redirection
	gone       bool
}

// FIFOPath reports whether the port names a FIFO that the plan makes at
// that path rather than a descriptor: a process substitution the planner
// made a named FIFO (NameFIFOs).
func FIFOPath(e *parser.Edge) (path string, ok bool) {
	return e.FIFO, e.FIFO != ""
}

// End is what one edge gives one stage at descriptor FD: a file (a pipe or
// FIFO end), a shm ring's descriptors, or one side of a mem ring. Exactly
// one of File, Ring, Writer and Reader is set.
type End struct {
	FD     int
	File   *os.File    // a pipe or FIFO end
	Ring   *RingEnd    // a shm ring
	Writer *RingWriter // a mem ring's writing side
	Reader *RingReader // a mem ring's reading side
}

// RingEnd is one side of a ring: its memory and that side's socket.
type RingEnd struct {
	Mem, Sock *os.File
	Writer    bool // the producing side
}

// Close releases the end: for a ring side that a stage never used, the
// peer then sees EOF or a broken pipe.
func (e End) Close() error {
	switch {
	case e.Ring != nil:
		return errors.Join(e.Ring.Mem.Close(), e.Ring.Sock.Close())
	case e.Writer != nil:
		return e.Writer.Close()
	case e.Reader != nil:
		return e.Reader.Close()
	}
	return e.File.Close()
}

// New chooses a transport for every edge of g (see Choose) and creates it.
// On error, everything created so far is closed again.
func New(g *parser.Graph, stages []StageInfo, opts Options) (*Plan, error) {
	choices, err := Choose(g, stages, opts.Transport)
	if err != nil {
		return nil, err
	}
	need := Needs(g, stages, choices, opts.RingSize)
	if err := need.Check(); err != nil {
		return nil, err
	}
	p := &Plan{ends: make([][]End, len(g.Stages)), Choices: choices, Meters: make([]*Meter, len(g.Edges)),
		edges: g.Edges, lazy: lazyEdges(g, choices), made: make([]bool, len(g.Edges)), released: make([]bool, len(g.Stages)), need: need}
	pipeSize := opts.PipeSize
	if pipeSize == 0 {
		pipes := 0
		for _, c := range choices {
			if c.Transport == parser.TransportPipe {
				pipes++
			}
		}
		pipeSize = PipeSizeFor(pipes, pipeUserPagesSoft())
	}
	p.pipeSize = pipeSize
	p.lazyOf = make([][]int, len(g.Stages))
	for k, e := range g.Edges {
		if p.lazy[k] {
			p.lazyOf[e.From.Stage] = append(p.lazyOf[e.From.Stage], k)
			if e.To.Stage != e.From.Stage {
				p.lazyOf[e.To.Stage] = append(p.lazyOf[e.To.Stage], k)
			}
		}
	}
	for _, e := range g.Edges {
		// Every FIFO of the plan goes in the directory the named ones
		// were given by the planner.
		if path, ok := FIFOPath(e); ok && p.fifoDir == "" {
			if err := p.makeFIFODir(filepath.Dir(path)); err != nil {
				return nil, err
			}
		}
	}
	for i, e := range g.Edges {
		var from, to End
		var err error
		if path, ok := FIFOPath(e); ok && choices[i].Transport == parser.TransportFIFO {
			if err := p.makeNamedFIFO(e, path); err != nil {
				return nil, errors.Join(fmt.Errorf("edge %d: %w", i+1, err), p.Close())
			}
			continue
		}
		if p.lazy[i] {
			continue // made by Open
		}
		p.made[i] = true
		switch choices[i].Transport {
		case parser.TransportPipe:
			from.File, to.File, err = pipeEnds(pipeSize)
		case parser.TransportFIFO:
			if p.fifoDir == "" {
				var dir string
				if dir, err = NewFIFODir(); err == nil {
					err = p.makeFIFODir(dir)
				}
			}
			if err == nil {
				to.File, from.File, err = fifoEnds(filepath.Join(p.fifoDir, fmt.Sprintf("edge%d", i+1)))
			}
		case parser.TransportShm:
			from.Ring, to.Ring, err = ringEnds(opts.RingSize)
			if err == nil {
				if p.Meters[i], err = shmMeter(from.Ring.Mem); err != nil {
					from.Close()
					to.Close()
				}
			}
		case parser.TransportMem:
			size := opts.RingSize
			if size == 0 {
				size = DefaultRingSize
			}
			from.Writer, to.Reader, p.Meters[i], err = newMemRing(size)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("edge %d: %w", i+1, p.WithNeed(err)), p.Close())
		}
		from.FD, to.FD = e.From.FD, e.To.FD
		p.ends[e.From.Stage] = append(p.ends[e.From.Stage], from)
		p.ends[e.To.Stage] = append(p.ends[e.To.Stage], to)
	}
	if len(p.fifos) == 0 && p.fifoDir != "" {
		// Only FIFOs that gpipe opened itself, their names already gone:
		// nothing needs the directory any more.
		if err := os.Remove(p.fifoDir); err != nil {
			return nil, errors.Join(err, p.Close())
		}
		p.fifoDir = ""
	}
	for _, st := range g.Stages {
		for _, in := range st.Inherits {
			f, err := p.dupEnd(in.From)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("%s: %w", stages[st.ID].Name, p.WithNeed(err)), p.Close())
			}
			p.ends[st.ID] = append(p.ends[st.ID], End{FD: in.FD, File: f})
		}
	}
	return p, nil
}

// dupEnd returns a copy of the descriptor an edge gives at port: what a
// stage that shares that end gets (Choose made it a pipe or FIFO).
func (p *Plan) dupEnd(port parser.Port) (*os.File, error) {
	for _, e := range p.ends[port.Stage] {
		if e.FD != port.FD {
			continue
		}
		if e.File == nil {
			return nil, fmt.Errorf("shared end %s of stage %d is not a descriptor", port, port.Stage+1)
		}
		fd, err := unix.FcntlInt(e.File.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("share %s of stage %d: %w", port, port.Stage+1, err)
		}
		return os.NewFile(uintptr(fd), e.File.Name()), nil
	}
	return nil, fmt.Errorf("no edge at %s of stage %d", port, port.Stage+1)
}

func pipeEnds(size int) (w, r *os.File, err error) {
	r, w, err = Pipe(size)
	return w, r, err
}

// fifoEnds makes a named FIFO at path, in a private directory, opens both
// ends without blocking (the read end first, non-blocking, then the write
// end, which then has a reader), and removes the name again: the
// descriptors carry the edge, and no name can be left behind.
func fifoEnds(path string) (r, w *os.File, err error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, nil, fmt.Errorf("create FIFO %s: %w", path, err)
	}
	defer os.Remove(path)
	rfd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open FIFO %s: %w", path, err)
	}
	wfd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(rfd)
		return nil, nil, fmt.Errorf("open FIFO %s: %w", path, err)
	}
	if err := unix.SetNonblock(rfd, false); err != nil {
		unix.Close(rfd)
		unix.Close(wfd)
		return nil, nil, fmt.Errorf("FIFO %s: %w", path, err)
	}
	return os.NewFile(uintptr(rfd), path), os.NewFile(uintptr(wfd), path), nil
}

// ringEnds creates a ring and splits it into its two sides, each with its
// own descriptor of the memory.
func ringEnds(size int) (w, r *RingEnd, err error) {
	if size == 0 {
		size = DefaultRingSize
	}
	f, err := NewRing(size)
	if err != nil {
		return nil, nil, err
	}
	memFD, err := unix.FcntlInt(f.Mem.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("ring memory: %w", err)
	}
	w = &RingEnd{Mem: os.NewFile(uintptr(memFD), "gpipe-ring"), Sock: f.WriterSock, Writer: true}
	r = &RingEnd{Mem: f.Mem, Sock: f.ReaderSock}
	return w, r, nil
}

// Open makes the edges of stage i that the plan makes as their stages
// start (pipes whose ends no other stage shares): call it just before
// starting stage i. An edge whose other stage was already released (it
// never ran) gets that end closed at once, so that stage i sees end of
// file or a broken pipe. On error (out of descriptors, say) stage i has
// the ends made so far; the error says what the plan needs and the limit.
func (p *Plan) Open(i int) error {
	if i >= len(p.lazyOf) {
		return nil
	}
	for _, k := range p.lazyOf[i] {
		e := p.edges[k]
		if p.made[k] {
			continue
		}
		w, r, err := pipeEnds(p.pipeSize)
		if err != nil {
			return fmt.Errorf("edge %d: %w", k+1, p.WithNeed(err))
		}
		p.made[k] = true
		for _, end := range []End{{FD: e.From.FD, File: w}, {FD: e.To.FD, File: r}} {
			st := e.From.Stage
			if end.File == r {
				st = e.To.Stage
			}
			if p.released[st] {
				end.Close()
				continue
			}
			p.ends[st] = append(p.ends[st], end)
		}
	}
	return nil
}

// Ends returns what stage i receives from its edges, making those that
// Open makes if it was not called (an error then leaves them out). The
// files stay owned by the plan.
func (p *Plan) Ends(i int) []End {
	_ = p.Open(i)
	return p.ends[i]
}

// Take hands stage i's ends over to the caller, who closes them: an
// in-process stage keeps its ring sides for its whole run. Like Ends, it
// makes the edges Open makes if that was not called.
func (p *Plan) Take(i int) []End {
	_ = p.Open(i)
	ends := p.ends[i]
	p.ends[i] = nil
	p.released[i] = true
	return ends
}

// Release closes the plan's copies of stage i's ends, as soon as the stage's
// process holds its own (or will never run): a reader only sees EOF once
// every copy of the writing end is closed. An edge of stage i not made yet
// is made with that end closed when its other stage opens it.
func (p *Plan) Release(i int) error {
	var errs []error
	for _, e := range p.ends[i] {
		errs = append(errs, e.Close())
	}
	p.ends[i] = nil
	if i < len(p.released) {
		p.released[i] = true
	}
	return errors.Join(errs...)
}

// lazyEdges marks the edges that Open makes as their stages start: pipes
// whose ends no other stage shares (a process substitution inherits its
// parent's stdin or stdout by a copy made up front).
func lazyEdges(g *parser.Graph, choices []Choice) []bool {
	lazy := make([]bool, len(g.Edges))
	for i, e := range g.Edges {
		if _, named := FIFOPath(e); named || choices[i].Transport != parser.TransportPipe {
			continue
		}
		lazy[i] = !g.Shared(e.From) && !g.Shared(e.To)
	}
	return lazy
}

// Close releases every end not yet released, and removes the named
// FIFOs and their directory. It is safe to call more than once.
func (p *Plan) Close() error {
	var errs []error
	for i := range p.ends {
		errs = append(errs, p.Release(i))
	}
	for _, m := range p.Meters {
		errs = append(errs, m.close())
	}
	if p.fifoDir != "" {
		errs = append(errs, os.RemoveAll(p.fifoDir))
		p.fifoDir = ""
	}
	return errors.Join(errs...)
}

// makeNamedFIFO creates the FIFO of edge e at path, in its private
// directory (0700, made on the first FIFO, with stale ones of crashed runs
// swept first).
func (p *Plan) makeNamedFIFO(e *parser.Edge, path string) error {
	dir := filepath.Dir(path)
	if p.fifoDir == "" {
		if err := p.makeFIFODir(dir); err != nil {
			return err
		}
	} else if dir != p.fifoDir {
		return fmt.Errorf("FIFO %s is not in %s", path, p.fifoDir)
	}
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("create FIFO %s: %w", path, err)
	}
	f := namedFIFO{path: path, stages: [2]int{e.From.Stage, e.To.Stage}}
	if e.To.Name == path {
		// The reader opens it as its argument; the writer's stdout is it.
		f.redirStage = e.From.Stage
		f.redir = parser.Redirect{Pos: e.Pos, FD: e.From.FD, Op: parser.RedirWrite, Path: path}
	} else {
		f.redirStage = e.To.Stage
		f.redir = parser.Redirect{Pos: e.Pos, FD: e.To.FD, Op: parser.RedirRead, Path: path}
	}
	p.fifos = append(p.fifos, f)
	return nil
}

// makeFIFODir creates the plan's private FIFO directory, after sweeping
// stale ones of crashed runs from its parent.
func (p *Plan) makeFIFODir(dir string) error {
	SweepFIFODirs(filepath.Dir(dir))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("FIFO directory: %w", err)
	}
	p.fifoDir = dir
	return nil
}

// FIFORedirects lists the redirections that open stage i's named FIFOs:
// they come before the stage's own, where its edges would be connected,
// and its helper process performs them (an open waits for the other side).
func (p *Plan) FIFORedirects(i int) []parser.Redirect {
	var rs []parser.Redirect
	for _, f := range p.fifos {
		if f.redirStage == i {
			rs = append(rs, f.redir)
		}
	}
	return rs
}

// Exited tells the plan that stage i has ended. Each side of a named FIFO
// opens it by path, and an open waits until the other side opens too; so
// once either side has ended, the other has opened it already or never
// will. The FIFO is then opened read-write for a moment, which wakes an
// open waiting for a partner (a writer then gets a broken pipe, a reader
// end of file), and unlinked before that is closed again, so that a later
// open fails (no such file) rather than wait for ever.
func (p *Plan) Exited(i int) {
	for k := range p.fifos {
		f := &p.fifos[k]
		if f.gone || (f.stages[0] != i && f.stages[1] != i) {
			continue
		}
		f.gone = true
		fd, err := unix.Open(f.path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		_ = os.Remove(f.path)
		if err == nil {
			unix.Close(fd)
		}
	}
}

// fifoDirPrefix starts the name of every FIFO directory: gpipe-fifo-PID-.
const fifoDirPrefix = "gpipe-fifo-"

// NewFIFODir returns a fresh name for a private FIFO directory in the
// temporary directory, without creating it: gpipe-fifo-PID-RANDOM.
func NewFIFODir() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-%x", fifoDirPrefix, os.Getpid(), b)), nil
}

// SweepFIFODirs removes the FIFO directories in dir left behind by gpipe
// processes that are gone (killed with SIGKILL, say): those of this user
// whose PID no longer runs.
func SweepFIFODirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), fifoDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, random, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || len(random) != 16 || strings.Trim(random, "0123456789abcdef") != "" {
			continue // not a name NewFIFODir makes
		}
		var st unix.Stat_t
		path := filepath.Join(dir, e.Name())
		if unix.Lstat(path, &st) != nil || int(st.Uid) != os.Getuid() {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			os.RemoveAll(path)
		}
	}
}
