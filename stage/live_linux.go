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
// far: the pid, when it began, and once it ended how and when; for a
// running process CPU (User, System), MaxRSS and IO are its figures so
// far, from /proc.
type StageState struct {
	Status
	State     State
	InProcess bool // a builtin running inside gpipe

	// Wchan is the kernel function a running process sleeps in, from
	// /proc/PID/wchan, with Options.MeasureIO: "pipe_write" (or
	// "anon_pipe_write", as kernels name it) is a writer waiting for room
	// in a pipe, "pipe_read" a reader waiting for data. Empty while it
	// runs on a processor, for an in-process builtin, or when unknown.
	Wchan string
}

// IO is what a process passed through read and write system calls so
// far, from /proc/PID/io: every byte, to and from pipes, files and
// terminals alike, its own children's included once they have ended and
// been waited for.
type IO struct {
	Known bool   // false: no reading (a builtin inside gpipe, or not measured)
	Rchar uint64 // bytes it read
	Wchar uint64 // bytes it wrote
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
		isProc := s.nodes[i].running
		switch {
		case !st.Started:
			ss.State = NotStarted
		case s.nodes[i].inproc:
			ss.State = Running
		case isProc && s.nodes[i].stopped:
			ss.State = Stopped
		case isProc:
			ss.State = Running
		default:
			ss.State = Ended
		}
		if isProc {
			// What wait4 tells at the end, /proc tells so far.
			if user, sys, ok := processCPU(st.Pid); ok {
				ss.User, ss.System, ss.CPU = user, sys, user+sys
			}
			if rss, ok := processPeakRSS(st.Pid); ok {
				ss.MaxRSS = rss
			}
			if got := processIO(st.Pid); got.Known {
				ss.IO = got
				if s.opts.MeasureIO {
					s.res.Statuses[i].IO = got // kept once it is gone
				}
			}
			if s.opts.MeasureIO {
				ss.Wchan = processWchan(st.Pid)
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
func processCPU(pid int) (user, sys time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	// After the command: state is field 3; utime and stime are 14 and 15.
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 13 {
		return 0, 0, false
	}
	utime, err1 := strconv.ParseUint(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	const tick = 10 * time.Millisecond
	return time.Duration(utime) * tick, time.Duration(stime) * tick, true
}

// processPeakRSS reads the largest resident set a running process reached
// so far, in bytes, from VmHWM in /proc/PID/status (what wait4 gives as
// ru_maxrss at the end).
func processPeakRSS(pid int) (int64, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

// processIO reads what a process read and wrote so far from
// /proc/PID/io; unknown if it cannot be read (the process is gone).
func processIO(pid int) IO {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return IO{}
	}
	var got IO
	seen := 0
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		var to *uint64
		switch string(name) {
		case "rchar":
			to = &got.Rchar
		case "wchar":
			to = &got.Wchar
		default:
			continue
		}
		n, err := strconv.ParseUint(string(value), 10, 64)
		if err != nil {
			return IO{}
		}
		*to = n
		seen++
	}
	got.Known = seen == 2
	return got
}

// processWchan reads where a process sleeps in the kernel, from
// /proc/PID/wchan: a function name, or "" (running, or unknown).
func processWchan(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
	if err != nil || string(data) == "0" {
		return ""
	}
	return string(data)
}
