package stage

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
)

// ExpandPar expands every par stage of g into the nodes that run it: the
// stage itself becomes the dealer (the builtin par, with its number of
// copies made explicit), N copies of its command follow (stages "3.1" to
// "3.N", each reading one port of the dealer), and a merge that gathers
// their outputs a whole line at a time takes the par stage's place
// downstream. jobs is the number of copies when the stage does not say
// (-j); 0 is one per usable CPU (UsableCPUs).
//
// With -k (Ordered), the dealer frames each unit and deals them in turn,
// the copies run their command once per block (parser.Stage.PerBlock) and
// the merge takes their framed outputs in turn (merge --frames).
//
// The par stage's redirections of its stdin stay with the dealer, those of
// its stdout go to the merge, and those of another descriptor go to every
// copy, but for a truncating "2> file", which the copies would write over
// one another (2>> is fine). A process substitution among the command's
// words is refused: each copy would need its own.
//
// Call it on the parser's graph, before AddRelays; it checks g again.
func ExpandPar(g *parser.Graph, jobs int) error {
	users := len(g.Stages)
	for i := 0; i < users; i++ {
		st := g.Stages[i]
		if len(st.Args) == 0 || st.Args[0] != "par" {
			continue
		}
		p, err := builtins.ParseParArgs(st.Args[1:])
		if err != nil {
			return &BuiltinError{Stage: st.Name(), ID: i, Err: err}
		}
		if p == nil {
			continue // par --help: the builtin prints it
		}
		if p.Jobs == 0 {
			p.Jobs = jobs
			if p.Jobs <= 0 {
				most := builtins.MaxParJobs
				if p.Header > 0 {
					most-- // the header takes a port
				}
				p.Jobs = min(UsableCPUs(), most)
			}
		}
		if err := expandOne(g, st, p); err != nil {
			return err
		}
	}
	if len(g.Stages) > users {
		orderAdded(g)
	}
	return parser.Check(g)
}

func expandOne(g *parser.Graph, st *parser.Stage, p *builtins.Par) error {
	fail := func(at parser.Pos, format string, args ...any) error {
		return &parser.Error{Name: g.Name, Pos: at, Text: fmt.Sprintf("%s: par: ", st.Name()) + fmt.Sprintf(format, args...)}
	}
	if p.Part {
		// A byte range of a file: not what an edge gives.
		for _, e := range g.Edges {
			if e.To.Stage == st.ID && e.To.FD == 0 && !redirectsStdin(st) {
				return fail(e.Pos, "--part: its input comes from %s, not a file: drop --part, or give par the file (par --part -- CMD < FILE)", g.Stages[e.From.Stage].Name())
			}
		}
	}
	for _, other := range g.Stages {
		if other.Parent == st {
			return fail(other.Pos, "a process substitution in the command of par's copies: each copy would need its own (run the command through sh -c)")
		}
	}
	var dealerRedirs, mergeRedirs, copyRedirs []parser.Redirect
	for _, r := range st.Redirs {
		switch {
		case r.FD == 0:
			dealerRedirs = append(dealerRedirs, r)
		case r.FD == 1:
			mergeRedirs = append(mergeRedirs, r)
		case r.Op == parser.RedirWrite && r.Path != "/dev/null":
			return fail(r.Pos, "%d> %s: each copy would write over the others' (use %d>> to append)", r.FD, r.Path, r.FD)
		case p.Ordered && r.Op == parser.RedirDup && r.DupFD == 1:
			return fail(r.Pos, "%d>&1 with -k: a copy's stdout carries its blocks' framed output; send the command's %d to its stdout inside it (sh -c 'CMD %d>&1')", r.FD, r.FD, r.FD)
		default:
			copyRedirs = append(copyRedirs, r)
		}
	}
	var dealerInh, mergeInh, copyInh []parser.Inherit
	for _, in := range st.Inherits {
		switch in.FD {
		case 0:
			dealerInh = append(dealerInh, in)
		case 1:
			mergeInh = append(mergeInh, in)
		default:
			copyInh = append(copyInh, in)
		}
	}

	mergeArgs := []string{"merge", "--par"}
	if p.Ordered {
		mergeArgs = []string{"merge", "--frames"}
	}
	merge := &parser.Stage{ID: len(g.Stages), Pos: st.Pos, Args: mergeArgs, Parent: st.Parent,
		Redirs: mergeRedirs, Inherits: mergeInh,
		Added: fmt.Sprintf("merges the outputs of the %d copies of %s", p.Jobs, st.Name())}
	g.Stages = append(g.Stages, merge)
	// What read the par stage's output reads the merge's.
	for _, e := range g.Edges {
		if e.From.Stage == st.ID && e.From.FD == 1 {
			e.From.Stage = merge.ID
		}
	}
	for i, from := range g.StdoutFrom {
		if from.Stage == st.ID && from.FD == 1 {
			g.StdoutFrom[i].Stage = merge.ID
		}
	}
	for _, other := range g.Stages {
		for k, in := range other.Inherits {
			if in.From.Stage == st.ID && in.From.FD == 1 {
				other.Inherits[k].From.Stage = merge.ID
			}
		}
	}
	for k := 1; k <= p.Jobs; k++ {
		fd, name := builtins.ParPort(k)
		c := &parser.Stage{ID: len(g.Stages), Pos: st.Pos, Args: p.Command, Parent: st.Parent,
			Env:    append(append([]string(nil), st.Env...), "GPIPE_COPY="+strconv.Itoa(k)),
			Redirs: copyRedirs, Inherits: copyInh, CopyOf: st, Copy: k, PerBlock: p.Ordered}
		g.Stages = append(g.Stages, c)
		g.Edges = append(g.Edges,
			&parser.Edge{From: parser.Port{Stage: st.ID, FD: fd, Name: name}, To: parser.Port{Stage: c.ID, FD: 0}, Pos: st.Pos},
			&parser.Edge{From: parser.Port{Stage: c.ID, FD: 1}, To: parser.Port{Stage: merge.ID, FD: fd, Name: name}, Pos: st.Pos})
		merge.Args = append(merge.Args, name)
	}
	if p.Header > 0 {
		// The header goes from the dealer to the merge on a port of its
		// own, and out first.
		fd, name := builtins.ParPort(p.Jobs + 1)
		g.Edges = append(g.Edges, &parser.Edge{From: parser.Port{Stage: st.ID, FD: fd, Name: name}, To: parser.Port{Stage: merge.ID, FD: fd, Name: name}, Pos: st.Pos})
		merge.Args = append(append(append([]string(nil), merge.Args[:2]...), "--first", name), merge.Args[2:]...)
	}
	args := []string{"par", "-j", strconv.Itoa(p.Jobs)}
	if p.Ordered {
		args = append(args, "-k")
	}
	if p.Header > 0 {
		args = append(args, "--header", strconv.Itoa(p.Header))
	}
	if p.HeaderEach {
		args = append(args, "--header-each")
	}
	if p.Part {
		args = append(args, "--part")
	}
	if p.BlockSet {
		args = append(args, "--block", strconv.Itoa(p.Block))
	}
	st.Args = append(append(args, "--"), p.Command...)
	st.Redirs, st.Inherits = dealerRedirs, dealerInh
	return nil
}

// redirectsStdin reports whether one of st's redirections replaces its
// stdin (the last word on what it reads).
func redirectsStdin(st *parser.Stage) bool {
	for _, r := range st.Redirs {
		if r.FD == 0 {
			return true
		}
	}
	return false
}

// UsableCPUs is how many CPUs this process may run on: those of its
// affinity mask, fewer when a cgroup (v2) quota allows less CPU time
// (cpu.max), as in a container limited with --cpus.
func UsableCPUs() int {
	n := runtime.NumCPU() // the affinity mask's, on Linux
	if quota := cgroupCPUs(); quota > 0 && quota < n {
		n = quota
	}
	return max(n, 1)
}

// cgroupCPUs reads this process's cgroup v2 CPU quota, rounded up to whole
// CPUs; 0 when there is none or it cannot be read.
func cgroupCPUs() int {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var path string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			path = rest
		}
	}
	if path == "" {
		return 0
	}
	// The tightest quota of the cgroup and its ancestors.
	least := 0
	for dir := path; ; dir = filepath.Dir(dir) {
		if n := cpuMax("/sys/fs/cgroup" + strings.TrimSuffix(dir, "/") + "/cpu.max"); n > 0 && (least == 0 || n < least) {
			least = n
		}
		if dir == "/" || dir == "." || dir == "" {
			return least
		}
	}
}

// cpuMax reads a cgroup v2 cpu.max file as whole CPUs, rounded up; 0 for
// no quota ("max") or no file.
func cpuMax(file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	quota, err1 := strconv.Atoi(f[0])
	period, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return 0
	}
	return (quota + period - 1) / period
}
