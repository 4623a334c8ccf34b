package stage

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// Early stop (Options.StopEarly): a stage whose output nothing reads any
// more is stopped now rather than at its next write, which may never come
// while it waits for its own input. stopEarly runs after each stage ends,
// since only an end can take a reader away; stopping one stage closes its
// input, which may take the last reader from the stage upstream, and so on
// up the graph.
//
// A program gets SIGPIPE as soon as any pipe or FIFO it writes to has no
// reader: the kernel would send it at its next write there. A builtin
// (inside gpipe, or in a helper process under --isolate) is stopped when
// every edge it writes to has lost its reader, since a fan-out goes on
// while one output is left (tee -p), and only when it writes nowhere else:
// its standard output must be one of those edges, no redirection may
// write to a file, and a builtin whose operands are outputs (tee, split)
// must have only ports among them. A builtin stopped early ends as a
// program killed by SIGPIPE: status 141, which is not a failure (its
// helper process is killed with SIGKILL, and reported so).

// stopEarly stops every running stage that no longer has a reader.
func (s *supervisor) stopEarly() {
	for i := range s.g.Stages {
		if s.nodes[i].pipeStopped {
			continue
		}
		runs := s.nodes[i].running
		switch {
		case runs && s.cmds[i].Builtin == "":
			if s.anyOutputGone(i) {
				s.nodes[i].pipeStopped = true
				// By pid: the process is not reaped before it leaves
				// running (see wait), so it is never another's.
				_ = syscall.Kill(s.res.Statuses[i].Pid, syscall.SIGPIPE)
			}
		case runs:
			if s.allOutputsGone(i) {
				// A helper process, in Go, cannot tell a SIGPIPE sent
				// to it from those its own writes to a gone output
				// raise, which a fan-out shrugs off: it is killed,
				// and reported as the broken pipe it is (record).
				s.nodes[i].pipeStopped = true
				_ = syscall.Kill(s.res.Statuses[i].Pid, syscall.SIGKILL)
			}
		case s.nodes[i].inproc:
			if s.allOutputsGone(i) {
				s.nodes[i].pipeStopped = true
				s.nodes[i].stop.Close()
			}
		}
	}
}

// anyOutputGone reports whether a program stage writes to a pipe or FIFO
// edge that has no reader left.
func (s *supervisor) anyOutputGone(i int) bool {
	for _, k := range s.g.Out(i) {
		if s.isPipe(k) && s.readerGone(k) {
			return true
		}
	}
	return false
}

// allOutputsGone reports whether builtin stage i writes only to edges,
// and none of them has a reader left.
func (s *supervisor) allOutputsGone(i int) bool {
	st := s.g.Stages[i]
	for _, r := range st.Redirs {
		if r.FD != 0 && r.FD != 2 && r.Op != parser.RedirRead {
			return false
		}
	}
	if s.g.Desc(i, 1).Inherits != nil {
		return false
	}
	stdout, ports := false, map[string]bool{}
	for _, k := range s.g.Out(i) {
		e := s.g.Edges[k]
		if !s.readerGone(k) {
			return false
		}
		if e.From.FD == 1 {
			stdout = true
		}
		ports[fmt.Sprintf("/dev/fd/%d", e.From.FD)] = true
		if path, ok := plumbing.FIFOPath(e); ok {
			ports[path] = true
		}
	}
	if !stdout {
		return false
	}
	if s.cmds[i].WritesOperands {
		// Flags and their values count as operands here: "tee --buffer
		// 1M >(…)" is never stopped early, which errs the safe way.
		for _, a := range s.cmds[i].Args[1:] {
			if !ports[a] && (a == "-" || a[0] != '-') {
				return false
			}
		}
	}
	return true
}

// isPipe reports whether edge k is a pipe or a FIFO.
func (s *supervisor) isPipe(k int) bool {
	t := s.plan.Choices[k].Transport
	return t == parser.TransportPipe || t == parser.TransportFIFO
}

// readerGone reports whether edge k has no reader left. A ring's reader
// is a builtin, whose end goes with its stage. Whether a pipe or FIFO has
// a reader, gpipe asks the kernel, through a descriptor of its writing
// end: gpipe's own copy when the writer runs inside gpipe, the writer's
// descriptor opened through /proc otherwise. A reader's own child that
// still holds the pipe counts as a reader. A FIFO that an in-process
// builtin opens by its path is asked through a copy its port files keep;
// until it is opened, the reader is taken to be there: a probe that
// opened and closed the FIFO itself would give a reader waiting for its
// writer a false end of file.
func (s *supervisor) readerGone(k int) bool {
	e := s.g.Edges[k]
	if !s.isPipe(k) {
		return !s.nodes[e.To.Stage].running && !s.nodes[e.To.Stage].inproc
	}
	if f := s.outCopies[k]; f != nil {
		// Through Control, not Fd, which would put the pipe end, shared
		// with the stage's own, back into blocking mode.
		gone := false
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { gone = pollNoReader(int(fd)) })
		}
		return gone
	}
	if files := s.nodes[e.From.Stage].ports; files != nil {
		if path, ok := plumbing.FIFOPath(e); ok {
			gone, _ := files.noReader(path)
			return gone
		}
	}
	if !s.nodes[e.From.Stage].running {
		return false
	}
	pid := s.res.Statuses[e.From.Stage].Pid
	if path, ok := plumbing.FIFOPath(e); ok {
		// The writer opened the FIFO by its path, at a descriptor of its
		// choosing; or a helper did, at the edge's.
		if fd, ok := openedForWriting(pid, path); ok {
			return noReader(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		}
		return false
	}
	return noReader(fmt.Sprintf("/proc/%d/fd/%d", pid, e.From.FD))
}

// openedForWriting finds the descriptor at which process pid has the
// named FIFO at path open for writing (the path unlinked since, too).
func openedForWriting(pid int, path string) (int, bool) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	names, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	for _, n := range names {
		link, err := os.Readlink(dir + "/" + n.Name())
		if err != nil || (link != path && link != path+" (deleted)") {
			continue
		}
		fd, err := strconv.Atoi(n.Name())
		if err == nil && writeMode(pid, fd) {
			return fd, true
		}
	}
	return 0, false
}

// writeMode reports whether pid's descriptor fd was opened for writing,
// from the flags in /proc/PID/fdinfo/FD (octal).
func writeMode(pid, fd int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return err == nil && flags&unix.O_ACCMODE != unix.O_RDONLY
		}
	}
	return false
}

// noReader reports whether the pipe or FIFO at path (a /proc descriptor
// link) has no reader left. gpipe, which holds none of its ends, opens it
// for writing without blocking: a named FIFO without a reader fails the
// open with ENXIO; an anonymous pipe opens, and is polled. A descriptor
// that a redirection made a file polls ready and is left alone.
func noReader(path string) bool {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err == unix.ENXIO
	}
	defer unix.Close(fd)
	return pollNoReader(fd)
}

// pollNoReader reports whether the writing end fd of a pipe or FIFO has no
// reader left: poll reports an error on it exactly then.
func pollNoReader(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 1 && fds[0].Revents&unix.POLLERR != 0
}

// keepOutCopies keeps a copy of each pipe or FIFO end that in-process
// stage i writes to, for readerGone. A copy of a writing end does not keep
// the reader from its end of file for long: it is closed as soon as the
// stage is seen to end (dropOutCopies).
func (s *supervisor) keepOutCopies(i int, ends []plumbing.End) {
	for _, end := range ends {
		if end.File == nil {
			continue
		}
		k, ok := s.g.EdgeAt(parser.Port{Stage: i, FD: end.FD})
		if !ok || s.g.Edges[k].From.Stage != i {
			continue
		}
		n, err := unix.FcntlInt(end.File.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err == nil {
			s.outCopies[k] = os.NewFile(uintptr(n), end.File.Name())
		}
	}
}

// dropOutCopies closes the copies kept for stage i's outputs.
func (s *supervisor) dropOutCopies(i int) {
	s.nodes[i].ports = nil
	for _, k := range s.g.Out(i) {
		if f := s.outCopies[k]; f != nil {
			f.Close()
			delete(s.outCopies, k)
		}
	}
}

// builtinStop makes the Stop of in-process stage i, which a teardown
// closes with every other (stopBuiltins) and an early stop alone.
func (s *supervisor) builtinStop(i int) *plumbing.Stop {
	st := plumbing.NewStop()
	s.nodes[i].stop = st
	return st
}

// stopBuiltins stops every in-process stage: each of their waits, Peeks
// and Reserves fails with plumbing.ErrStopped. They are stopped downstream
// first: a stage stopped closes its output, and a reader that saw that
// end before its own stop would end as if its input had simply ended
// (status 0, where a teardown must read as one).
func (s *supervisor) stopBuiltins() {
	for k := len(s.res.order) - 1; k >= 0; k-- {
		if st := s.nodes[s.res.order[k]].stop; st != nil {
			st.Close()
		}
	}
}
