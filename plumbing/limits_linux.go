package plumbing

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

// Need is what a plan takes, at most, of gpipe's own process-wide limits
// while it runs, on top of what gpipe holds before it starts.
//
// Descriptors: a pipe between two stages is made as the first of them
// starts and gpipe's copies are closed as each has started (Plan.Open), so
// a chain of programs needs a few at a time, not a few per stage; a
// builtin inside gpipe keeps its pipe ends and its own redirections and
// standard files for its whole run; FIFOs, shm rings and pipes a process
// substitution shares are made up front, and counted whole. A mem ring
// needs no descriptor. The count is an estimate, a few either way: the Go
// runtime's own (its poller, say) are not in it.
//
// Memory maps: a mem ring is two mappings in gpipe (its pages and their
// mirror), a shm ring one (its header, for the meter); the kernel allows a
// process vm.max_map_count of them (65530 by default), Go's own included.
//
// Address space: a mem ring reserves its header and twice its size (the
// data and its mirror), a shm ring the same in each builtin inside gpipe
// that maps it; ulimit -v caps the sum, with gpipe's own, which the Go
// runtime makes 700 MiB or more before gpipe runs (see the README).
type Need struct {
	FDs   int   // descriptors held at once
	Maps  int   // memory mappings
	Bytes int64 // address space
}

// procFDs are the descriptors a run with processes holds besides its
// edges: the guardian's pipe and process, and a start's error pipe.
const procFDs = 4

// Needs works out what the plan of g with the given transports and ring
// size (0 for DefaultRingSize) needs. The
// descriptors are counted as the stages start in order: pipes made as
// their first stage starts, gpipe's copies closed as each has started,
// except those a builtin inside gpipe keeps.
func Needs(g *parser.Graph, stages []StageInfo, choices []Choice, ringSize int) Need {
	var n Need
	if ringSize == 0 {
		ringSize = DefaultRingSize
	}
	ringBytes := int64(ringHeaderSize + 2*ringCapacity(ringSize))
	lazy := lazyEdges(g, choices)
	onEdge := map[parser.Port]bool{}
	procs, builtins := false, false
	for _, st := range g.Stages {
		if stages[st.ID].InProcess {
			builtins = true
		} else {
			procs = true
		}
	}
	fixed := 0
	if procs {
		fixed += procFDs
	}
	if builtins {
		fixed++ // the copy of gpipe's stderr they share
	}
	for i, e := range g.Edges {
		onEdge[parser.Port{Stage: e.From.Stage, FD: e.From.FD}] = true
		onEdge[parser.Port{Stage: e.To.Stage, FD: e.To.FD}] = true
		switch choices[i].Transport {
		case parser.TransportMem:
			n.Maps += 2
			n.Bytes += ringBytes
		case parser.TransportShm:
			n.Maps++
			n.Bytes += ringHeaderSize
			fixed += 4 // the memfd, a copy for the writer, a socket pair
			for _, p := range []parser.Port{e.From, e.To} {
				if stages[p.Stage].InProcess {
					n.Maps += 2 // the side a builtin inside gpipe maps
					n.Bytes += ringBytes
				}
			}
		case parser.TransportPipe, parser.TransportFIFO:
			if !lazy[i] {
				fixed += 2
			}
		}
	}
	for _, st := range g.Stages {
		fixed += len(st.Inherits) // copies made up front
		if !stages[st.ID].InProcess {
			continue
		}
		fixed += len(st.Redirs)
		for fd := range 2 {
			if !onEdge[parser.Port{Stage: st.ID, FD: fd}] {
				fixed++ // a copy of gpipe's stdin or stdout
			}
		}
	}
	// The pipes made as stages start, while their other stage has not
	// started, and the ends builtins inside gpipe keep.
	byStage := make([][]int, len(g.Stages)) // each stage's lazy edges
	for k, e := range g.Edges {
		if lazy[k] {
			byStage[e.From.Stage] = append(byStage[e.From.Stage], k)
			if e.To.Stage != e.From.Stage {
				byStage[e.To.Stage] = append(byStage[e.To.Stage], k)
			}
		}
	}
	made := make([]bool, len(g.Edges))
	pending, held, peak := 0, 0, 0
	for _, st := range g.Stages {
		for _, k := range byStage[st.ID] {
			if !made[k] {
				made[k] = true
				pending += 2
			}
		}
		peak = max(peak, pending+held)
		for _, k := range byStage[st.ID] {
			for _, p := range []parser.Port{g.Edges[k].From, g.Edges[k].To} {
				if p.Stage != st.ID {
					continue
				}
				pending--
				if stages[st.ID].InProcess {
					held++
				}
			}
		}
	}
	for k, e := range g.Edges {
		// Eager pipes and FIFOs a builtin keeps.
		if !lazy[k] && (choices[k].Transport == parser.TransportPipe || choices[k].Transport == parser.TransportFIFO) {
			for _, p := range []parser.Port{e.From, e.To} {
				if stages[p.Stage].InProcess {
					held++
				}
			}
		}
	}
	n.FDs = fixed + max(peak, held)
	return n
}

// LimitError is a plan that needs more of a process-wide limit than gpipe
// has left: what it needs, what gpipe uses already, and the limit.
type LimitError struct {
	What  string // "descriptors" or "memory maps"
	Need  int    // what the pipeline needs at most
	InUse int    // what gpipe held before
	Limit int
	Unit  string // after InUse and Limit: " MiB" for address space
	Knob  string // how the limit is set: "ulimit -n", "vm.max_map_count"
	Err   error  // the system's error, when the limit was hit on the way
}

func (e *LimitError) Error() string {
	s := fmt.Sprintf("the pipeline needs up to %d %s, and gpipe holds %d%s already: more than the limit of %d%s (%s)",
		e.Need, e.What, e.InUse, e.Unit, e.Limit, e.Unit, e.Knob)
	if e.Err != nil {
		s = e.Err.Error() + ": " + s
	}
	return s
}

func (e *LimitError) Unwrap() error { return e.Err }

// Check compares the need with gpipe's limits as they stand: the soft
// limit of open descriptors (ulimit -n) and vm.max_map_count, less what
// gpipe holds already. A limit it cannot read is not checked.
func (n Need) Check() error {
	if limit, inUse, ok := fdLimit(); ok && inUse+n.FDs > limit {
		return &LimitError{What: "descriptors", Need: n.FDs, InUse: inUse, Limit: limit, Knob: "ulimit -n"}
	}
	if limit, inUse, ok := mapLimit(); ok && inUse+mapSlack+n.Maps > limit {
		return &LimitError{What: "memory maps", Need: n.Maps, InUse: inUse, Limit: limit, Knob: "vm.max_map_count"}
	}
	if limit, inUse, ok := addressLimit(); ok && inUse+addressSlack+n.Bytes > limit {
		return n.addressError(limit, inUse, nil)
	}
	return nil
}

// addressError is the LimitError of address space, in MiB.
func (n Need) addressError(limit, inUse int64, err error) *LimitError {
	mib := func(b int64) int { return int((b + 1<<20 - 1) >> 20) }
	return &LimitError{What: "MiB of address space for its rings", Need: mib(n.Bytes), InUse: mib(inUse), Limit: int(limit >> 20), Unit: " MiB", Knob: "ulimit -v", Err: err}
}

// WithNeed adds to an error of running out of descriptors (or of memory
// maps, when those are near their limit) what the plan needs and the
// limit; it returns any other error as it is. The supervisor gives it the
// failures of gpipe's own resources as stages start.
func (p *Plan) WithNeed(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return err
	}
	switch {
	case errors.Is(err, unix.EMFILE):
		if limit, inUse, ok := fdLimit(); ok {
			return &LimitError{What: "descriptors", Need: p.need.FDs, InUse: inUse, Limit: limit, Knob: "ulimit -n", Err: err}
		}
	case errors.Is(err, unix.ENOMEM):
		if limit, inUse, ok := mapLimit(); ok && inUse+mapSlack+p.need.Maps >= limit {
			return &LimitError{What: "memory maps", Need: p.need.Maps, InUse: inUse, Limit: limit, Knob: "vm.max_map_count", Err: err}
		}
		if limit, inUse, ok := addressLimit(); ok {
			return p.need.addressError(limit, inUse, err)
		}
	}
	return err
}

// fdLimit returns the soft limit of open descriptors and how many gpipe
// has open. Counting them takes a descriptor: when none is left, which is
// when WithNeed asks, every one below the limit is open.
func fdLimit() (limit, inUse int, ok bool) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<30 {
		return 0, 0, false
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if errors.Is(err, unix.EMFILE) {
		return int(rl.Cur), int(rl.Cur), true
	}
	if err != nil {
		return 0, 0, false
	}
	return int(rl.Cur), len(entries) - 1, true // less the one reading it
}

// mapLimit returns vm.max_map_count and how many mappings gpipe has.
func mapLimit() (limit, inUse int, ok bool) {
	data, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		return 0, 0, false
	}
	limit, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, 0, false
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, 0, false
	}
	return limit, strings.Count(string(maps), "\n"), true
}

// mapSlack is room for the Go runtime's own mappings to grow while the
// pipeline runs (its heap, threads' stacks).
const mapSlack = 256

// addressLimit returns the soft limit of address space (ulimit -v) and
// how much gpipe has mapped, in bytes.
func addressLimit() (limit, inUse int64, ok bool) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<62 {
		return 0, 0, false
	}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, found := strings.CutPrefix(line, "VmSize:"); found {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, 0, false
			}
			return int64(rl.Cur), kb << 10, true
		}
	}
	return 0, 0, false
}

// addressSlack is room for the Go runtime's heap and stacks to grow while
// the pipeline runs: none, for the runtime grows its heap by 64 MiB
// arenas, which no margin short of that predicts; the check is for the
// rings, which grow with the pipeline.
const addressSlack = 0
