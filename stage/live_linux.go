package stage

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// Snapshot is the pipeline as it stands while it runs: what SIGUSR1 to
// gpipe prints, like dd's. Taking one disturbs no stage: it reads gpipe's
// own records, /proc and the rings' counters.
type Snapshot struct {
	At     time.Time
	Stages []StageState     // one per stage, in Graph.Stages order
	Edges  []plumbing.Count // one per edge, in Graph.Edges order
}

// StageState is one stage in a Snapshot. Status holds what is known so
// far: the pid, when it began, and once it ended how and when; CPU is the
// time used so far (of a running process, from /proc).
type StageState struct {
	Status
	State     State
	InProcess bool // a builtin running inside gpipe
}

// State is where a stage is in its life.
type State int

const (
	NotStarted State = iota
	Running
	Stopped // by a signal, as by Ctrl-Z
	Ended
)

func (s State) String() string {
	return [...]string{"not started", "running", "stopped", "ended"}[s]
}

// Event is a change in one stage's life, told to Options.OnEvent as it
// happens.
type Event struct {
	Kind  EventKind
	Stage int // index in Graph.Stages
	Pid   int // 0 for a builtin inside gpipe
	Time  time.Time
	// Signal is what stopped the stage (Stopped).
	Signal syscall.Signal
	// Status is how the stage ended (Exited), as in the Result.
	Status Status
	// Usage is the resources an ended process used (Exited), from
	// wait4; nil for a builtin inside gpipe.
	Usage *unix.Rusage
}

// EventKind is what happened to a stage.
type EventKind int

const (
	Started EventKind = iota
	Exited
	StoppedBy // stopped by a signal (Event.Signal)
	Continued
)

func (k EventKind) String() string {
	return [...]string{"started", "exited", "stopped", "continued"}[k]
}

// event tells Options.OnEvent, if set.
func (s *supervisor) event(e Event) {
	if s.opts.OnEvent != nil {
		e.Time = time.Now()
		s.opts.OnEvent(e)
	}
}

// snapshot takes a Snapshot of the running pipeline.
func (s *supervisor) snapshot() *Snapshot {
	snap := &Snapshot{At: time.Now(), Stages: make([]StageState, len(s.res.Statuses)), Edges: make([]plumbing.Count, len(s.plan.Meters))}
	for i, st := range s.res.Statuses {
		ss := StageState{Status: st, InProcess: s.cmds[i].InProcess}
		_, isProc := s.running[i]
		switch {
		case !st.Started:
			ss.State = NotStarted
		case s.inproc[i]:
			ss.State = Running
		case isProc && s.stopped[i]:
			ss.State = Stopped
		case isProc:
			ss.State = Running
		default:
			ss.State = Ended
		}
		if isProc {
			if cpu, ok := processCPU(st.Pid); ok {
				ss.CPU = cpu
			}
		}
		snap.Stages[i] = ss
	}
	for i, m := range s.plan.Meters {
		snap.Edges[i] = m.Count()
	}
	return snap
}

// processCPU reads the user and system time a running process used so
// far from /proc/PID/stat, in the kernel's clock ticks, which are a
// hundredth of a second for every process on Linux (USER_HZ).
func processCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	// After the command: state is field 3; utime and stime are 14 and 15.
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// ProcessIO is what a process read and wrote through system calls, from
// /proc/PID/io: every descriptor together (a stage's stdin and stdout,
// and its files and stderr too), counted by the kernel whether the bytes
// went to a disk or a pipe.
type ProcessIO struct {
	Read, Written uint64 // rchar and wchar
}

// ReadProcessIO reads /proc/PID/io; ok is false when it cannot (the
// process is gone, or not gpipe's to read).
func ReadProcessIO(pid int) (io ProcessIO, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return io, false
	}
	var seen int
	for _, line := range bytes.Split(data, []byte("\n")) {
		name, value, found := bytes.Cut(line, []byte(": "))
		if !found {
			continue
		}
		n, err := strconv.ParseUint(string(value), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "rchar":
			io.Read, seen = n, seen+1
		case "wchar":
			io.Written, seen = n, seen+1
		}
	}
	return io, seen == 2
}

// Codes of a child's waitid event (si_code, CLD_* in <signal.h>).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// ioAtExit waits for the next change of process pid without reaping it
// (WNOWAIT) and, if the process has ended, reads its I/O counters while
// its /proc entry is still there; nil for a stop or continue, or if the
// counters cannot be read. The caller then reaps, or takes the stop, with
// wait4, which returns at once.
func ioAtExit(pid int) *ProcessIO {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WCONTINUED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || (info.Code != cldExited && info.Code != cldKilled && info.Code != cldDumped) {
			return nil
		}
		if io, ok := ReadProcessIO(pid); ok {
			return &io
		}
		return nil
	}
}
