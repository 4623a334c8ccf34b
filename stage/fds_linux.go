package stage

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// fdTable is the set of descriptors a stage's process starts with, built the
// way bash builds it in a pipeline's subshell: gpipe's own standard files,
// then the edges, then the redirections in order.
type fdTable struct {
	files  map[int]*os.File
	closed map[int]bool // closed by a redirection ("3>&-"), even if gpipe inherited it
	owned  []*os.File   // opened or duplicated here; closed once the process started
	passOn []int        // descriptors above 2 that gpipe inherited, see inheritedFDs
	floor  int          // addAbove places nothing at or below this
	dir    string       // the stage's directory, where relative targets are (Command.Dir)
	// created lists the files that the redirections created (they did
	// not exist before), as gpipe names them (in dir): what an abandoned
	// start removes again.
	created []string
}

// newFDTable starts a table from gpipe's standard files, the descriptors
// gpipe inherited, and the stage's pipe and FIFO ends. Ring ends are not
// descriptors of the stage's own numbering; see addAbove. A nil standard
// file is a descriptor the stage starts with closed.
func newFDTable(stdin, stdout, stderr *os.File, ends []plumbing.End, inherited []int) *fdTable {
	t := &fdTable{files: map[int]*os.File{}, closed: map[int]bool{}, passOn: inherited}
	for fd, f := range []*os.File{stdin, stdout, stderr} {
		if f != nil {
			t.files[fd] = f
		} else {
			t.closed[fd] = true
		}
	}
	for _, e := range ends {
		if e.File != nil {
			t.files[e.FD] = e.File
		}
	}
	return t
}

// reportRedirect writes the message of the redirection that failed,
// err, where bash writes it: to the stage's standard error as the
// redirections before it left it (so "cmd 2>/dev/null < missing" prints
// nothing, and "cmd 2>&1 < missing | …" sends it down the pipe). It
// reports whether it did; it does not when descriptor 2 is still own,
// the stage's standard error at start, and the caller then reports err
// as gpipe's other messages. A descriptor 2 that a redirection closed
// takes the message nowhere, as in bash.
func (t *fdTable) reportRedirect(own *os.File, err error) bool {
	f, ok := t.files[2]
	if !t.closed[2] && (!ok || f == own) {
		return false
	}
	if f != nil && !t.closed[2] {
		_, _ = fmt.Fprintf(f, "gpipe: %v\n", err) // bash, too, goes on if this fails
	}
	return true
}

// addAbove gives f the lowest number above every descriptor the table
// holds, inherits or closes, and returns that number: how a builtin's
// ring descriptors reach it without displacing any of the stage's own.
func (t *fdTable) addAbove(f *os.File) int {
	fd := max(2, t.floor)
	for n := range t.files {
		fd = max(fd, n)
	}
	for n := range t.closed {
		fd = max(fd, n)
	}
	for _, n := range t.passOn {
		fd = max(fd, n)
	}
	t.files[fd+1] = f
	return fd + 1
}

// reserve keeps addAbove from placing anything at fd: a redirection that
// the stage's own process will perform may use it.
func (t *fdTable) reserve(fd int) { t.floor = max(t.floor, fd) }

// apply performs one redirection. Its error reads like bash's:
// "out/x: No such file or directory", "9: Bad file descriptor".
func (t *fdTable) apply(r parser.Redirect) error {
	flag, isFile := openFlags(r.Op)
	switch r.Op {
	case parser.RedirClose:
		delete(t.files, r.FD)
		t.closed[r.FD] = true
		return nil
	case parser.RedirDup:
		f, ok := t.files[r.DupFD]
		if !ok {
			if f = t.inherited(r.DupFD); f == nil {
				return fmt.Errorf("%d: %s", r.DupFD, errText(syscall.EBADF))
			}
		}
		t.files[r.FD] = f
		delete(t.closed, r.FD)
		return nil
	}
	if !isFile {
		return fmt.Errorf("redirection %d is not supported", r.Op)
	}
	var f *os.File
	var err error
	if n, ok := fdPath(r.Path); ok && (t.files[n] != nil || t.closed[n] || !isInherited(n)) {
		// "< /dev/fd/63" means the stage's own descriptor 63, not gpipe's.
		if cur := t.files[n]; cur != nil {
			f, err = reopen(cur, flag)
		} else {
			err = syscall.ENOENT
		}
	} else {
		path := inDir(t.dir, r.Path)
		_, statErr := os.Lstat(path)
		f, err = os.OpenFile(path, flag, 0o666)
		if err == nil && flag&os.O_CREATE != 0 && errors.Is(statErr, os.ErrNotExist) {
			t.created = append(t.created, path)
		}
	}
	if err != nil {
		return &openError{r.Path, err}
	}
	t.owned = append(t.owned, f)
	t.files[r.FD] = f
	delete(t.closed, r.FD)
	return nil
}

// openFlags returns how a file redirection opens its target, as bash opens
// it; isFile is false for the operations that open nothing.
func openFlags(op parser.RedirOp) (flags int, isFile bool) {
	switch op {
	case parser.RedirRead:
		return unix.O_RDONLY, true
	case parser.RedirWrite:
		return unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC, true
	case parser.RedirAppend:
		return unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND, true
	case parser.RedirReadWrite:
		return unix.O_RDWR | unix.O_CREAT, true
	}
	return 0, false
}

// inherited returns a close-on-exec copy of descriptor fd if gpipe itself
// inherited it open from its parent (not close-on-exec): bash hands such
// descriptors on to its children, and so does gpipe. It returns nil if fd
// is not such a descriptor.
func (t *fdTable) inherited(fd int) *os.File {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC != 0 {
		return nil
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(dup), fmt.Sprintf("fd %d", fd))
	t.owned = append(t.owned, f)
	return f
}

// procFiles lays the table out as os.ProcAttr.Files: index i becomes fd i in
// the child, nil means closed. Descriptors gpipe inherited in a gap of the
// list are listed, or the child would close them.
//
// Those above the list must survive too. Before placing the list, the child
// moves its error-report pipe, and every entry whose number is below its
// slot, to scratch numbers starting just above the highest source
// descriptor or the list's length, overwriting what is there: an inherited
// descriptor there would vanish. So, when gpipe inherited any descriptor
// above the list, one entry is duplicated to a number above all of them,
// which puts the whole scratch range above them too. (Listing every
// inherited descriptor instead would make a stage that inherits fd 251
// close 248 empty slots before every exec.)
func (t *fdTable) procFiles() []*os.File {
	top := 2
	for fd := range t.files {
		top = max(top, fd)
	}
	for fd := range t.closed {
		top = max(top, fd)
	}
	files := make([]*os.File, top+1)
	maxSrc := 0
	for fd := range files {
		if f, ok := t.files[fd]; ok {
			files[fd] = f
		} else if fd > 2 && !t.closed[fd] {
			files[fd] = t.inherited(fd)
		}
		if files[fd] != nil {
			maxSrc = max(maxSrc, int(files[fd].Fd()))
		}
	}
	maxInherited := 0
	for _, fd := range t.passOn {
		maxInherited = max(maxInherited, fd)
	}
	if maxInherited > top && maxSrc <= maxInherited {
		for i, f := range files {
			if f == nil {
				continue
			}
			dup, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, maxInherited+1)
			if err != nil {
				break // out of descriptors: the scratch range stays where it is
			}
			files[i] = os.NewFile(uintptr(dup), f.Name())
			t.owned = append(t.owned, files[i])
			break
		}
	}
	return files
}

// closedStd lists the standard descriptors (0, 1, 2) a stage ends up with
// closed: those closed in t, then, in order, those that redirs, which the
// stage's helper process performs itself, close or open anew.
func closedStd(t *fdTable, redirs []parser.Redirect) []int {
	closed := [3]bool{t.closed[0], t.closed[1], t.closed[2]}
	for _, r := range redirs {
		if r.FD >= 0 && r.FD <= 2 {
			closed[r.FD] = r.Op == parser.RedirClose
		}
	}
	var fds []int
	for fd, c := range closed {
		if c {
			fds = append(fds, fd)
		}
	}
	return fds
}

// close closes what the table opened; the edges' ends belong to the plan.
func (t *fdTable) close() error {
	var errs []error
	for _, f := range t.owned {
		errs = append(errs, f.Close())
	}
	t.owned = nil
	return errors.Join(errs...)
}

// inheritedFDs lists the descriptors above 2 that gpipe inherited open
// from its parent and that bash would hand on to every stage: those that
// are not close-on-exec (everything gpipe opens itself is).
func inheritedFDs() []int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}
