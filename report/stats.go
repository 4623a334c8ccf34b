package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// StatsVersion is the version of the JSON form, docs/stats.schema.json.
// It changes when a field changes meaning or goes away; fields may be
// added within a version.
const StatsVersion = 1

// Stats is what --stats reports of a run, in the shape of its JSON
// form (docs/stats.schema.json documents every field). Times are seconds;
// a figure gpipe cannot know is null, never zero.
type Stats struct {
	Version  int          `json:"version"`
	ExitCode int          `json:"exit_code"`
	Signal   *string      `json:"signal"` // the teardown signal gpipe received; null if none
	Wall     float64      `json:"wall_seconds"`
	Stages   []StageStats `json:"stages"`
	Edges    []EdgeStats  `json:"edges"`
}

// StageStats is what --stats reports of one stage.
type StageStats struct {
	Number int `json:"number"` // as --status shows it: 1 is the first
	// Copy is, for a copy of a par stage, its number within that stage
	// (Number), from 1: stage "3.2" is number 3, copy 2.
	Copy     int    `json:"copy,omitempty"`
	Name     string `json:"name"` // the command's name, "" for redirections only
	Command  string `json:"command"`
	Position string `json:"position"` // LINE:COL in the spec or file
	// Parent is the stage whose process substitution this one is part of.
	Parent  *int   `json:"parent"`
	Added   bool   `json:"added_by_gpipe"`
	Kind    string `json:"kind"` // program, builtin (inside gpipe), builtin-process, none
	Started bool   `json:"started"`
	Pid     *int   `json:"pid"`
	// Status is the exit code, 128+N for a death by signal N; null if the
	// stage never started.
	Status *int    `json:"status"`
	Signal *string `json:"signal"`
	Reason string  `json:"reason"` // exited N, killed by SIG…, broken pipe, …

	Wall   *float64 `json:"wall_seconds"`
	CPU    *float64 `json:"cpu_seconds"`
	User   *float64 `json:"user_seconds"`
	System *float64 `json:"system_seconds"`
	MaxRSS *int64   `json:"max_rss_bytes"`
	// IORead and IOWritten are what the stage's process read and wrote,
	// all its descriptors together (rchar and wchar of /proc/PID/io);
	// null for a builtin inside gpipe.
	// Busy is the time a builtin inside gpipe ran rather than waited;
	// null for a process.
	Busy      *float64 `json:"busy_seconds"`
	IORead    *uint64  `json:"io_read_bytes"`
	IOWritten *uint64  `json:"io_written_bytes"`
	// Busiest marks the stage that used the most CPU: in a pipeline that
	// is not waiting on I/O, the one that sets the pace.
	Busiest bool `json:"busiest"`
	// Outputs is what each output of a fan-out builtin inside gpipe (tee,
	// split) queued for its reader; null for any other stage.
	Outputs []OutputStats `json:"outputs"`
}

// OutputStats is what one output of a fan-out builtin inside gpipe
// queued for its reader.
type OutputStats struct {
	Output string `json:"output"` // as the builtin names it: "standard output", "/dev/fd/63", a file
	// Reader is the stage that reads it, when it is an edge of the graph
	// (ReaderCopy: the copy of a par stage, when it is one).
	Reader     *int  `json:"reader"`
	ReaderCopy int   `json:"reader_copy,omitempty"`
	Peak       int64 `json:"peak_queued_bytes"`
	Spilled    int64 `json:"spilled_bytes"`
	// Bytes is all the output was given, and Starved how long its writer
	// waited for the input with nothing to write (how long the copy got
	// nothing from par's dealer); null but for par's dealer, whose every
	// byte goes through its queues.
	Bytes   *int64   `json:"bytes"`
	Starved *float64 `json:"starved_seconds"`

	readerIndex int // Reader's index in Stats.Stages
}

// EdgeStats is what --stats reports of one edge.
type EdgeStats struct {
	Number    int      `json:"number"`
	From      EdgeEnd  `json:"from"`
	To        EdgeEnd  `json:"to"`
	Transport string   `json:"transport"`
	Counted   bool     `json:"counted"` // false: gpipe is not in this edge's data path
	Bytes     *uint64  `json:"bytes"`   // bytes its reader took
	Written   *uint64  `json:"bytes_written"`
	Rate      *float64 `json:"bytes_per_second"`
	Blocked   *float64 `json:"writer_blocked_seconds"`
	Starved   *float64 `json:"reader_starved_seconds"`
	Fullest   bool     `json:"fullest"` // the edge whose writer waited longest for room
	Note      string   `json:"note,omitempty"`
}

// EdgeEnd is one end of an edge: a stage and its descriptor.
type EdgeEnd struct {
	Stage int `json:"stage"`          // the stage's number
	Copy  int `json:"copy,omitempty"` // and copy, for a copy of a par stage
	FD    int `json:"fd"`

	index int // in Stats.Stages
}

// statsEnd is the EdgeEnd of port p of g.
func statsEnd(g *parser.Graph, p parser.Port) EdgeEnd {
	n, c := statsNumber(g.Stages[p.Stage])
	return EdgeEnd{Stage: n, Copy: c, FD: p.FD, index: p.Stage}
}

// statsNumber is how --stats numbers a stage: its number, and for a copy
// of a par stage, that stage's and the copy's.
func statsNumber(st *parser.Stage) (number, copy int) {
	if st.CopyOf != nil {
		return st.CopyOf.ID + 1, st.Copy
	}
	return st.ID + 1, 0
}

// CollectStats gathers what --stats reports from a finished run: the
// statuses, and the last counts of every edge's meter.
//
// A builtin inside gpipe has no CPU clock of its own that is cheap to
// read (a thread's costs system calls at every wait, which slowed a fast
// stream by three quarters): its CPU is gpipe's own (self, from
// getrusage) shared among the builtins in proportion to their busy time,
// and never more than that busy time.
//
// cmds and choices are the plan's, as for Explain; res is the ended
// run's result, and snap its last Snapshot (nil: no edge was counted);
// wall is how long the run took.
func CollectStats(g *parser.Graph, cmds []stage.Command, choices []plumbing.Choice, res *stage.Result, snap *stage.Snapshot, wall, self time.Duration) *Stats {
	rs := &Stats{Version: StatsVersion, ExitCode: res.ExitCode(), Wall: wall.Seconds(), Stages: []StageStats{}, Edges: []EdgeStats{}}
	if sig, ok := res.Signal.(syscall.Signal); ok {
		rs.Signal = ptr(signalName(sig))
	}
	var allBusy time.Duration
	for i, st := range res.Statuses {
		if cmds[i].InProcess {
			allBusy += st.Busy
		}
	}
	busiest, most := -1, time.Duration(0)
	for i, st := range res.Statuses {
		if cmds[i].InProcess && st.Started && allBusy > 0 {
			st.CPU = min(st.Busy, time.Duration(float64(self)*float64(st.Busy)/float64(allBusy)))
		}
		s := g.Stages[i]
		number, copy := statsNumber(s)
		ss := StageStats{Number: number, Copy: copy, Command: ShellWords(s.Args), Position: s.Pos.String(), Added: s.Added != "", Started: st.Started, Kind: kindOf(cmds[i])}
		if len(s.Args) > 0 {
			ss.Name = s.Args[0]
		}
		if s.Parent != nil {
			ss.Parent = ptr(s.Parent.ID + 1) // a par stage's copy is never a parent
		}
		ss.Reason = reasonOf(st)
		if st.Started || st.Err != nil {
			ss.Status = ptr(st.Code)
		}
		if st.Signal != 0 {
			ss.Signal = ptr(signalName(st.Signal))
		}
		if st.Pid != 0 {
			ss.Pid = ptr(st.Pid)
		}
		if !st.Began.IsZero() && !st.Ended.IsZero() {
			ss.Wall = ptr(st.Ended.Sub(st.Began).Seconds())
		}
		if st.Started {
			ss.CPU = ptr(st.CPU.Seconds())
			if st.CPU > most {
				busiest, most = i, st.CPU
			}
		}
		if st.Started && !cmds[i].InProcess {
			ss.User, ss.System = ptr(st.User.Seconds()), ptr(st.System.Seconds())
			ss.MaxRSS = ptr(st.MaxRSS)
		}
		if cmds[i].InProcess && st.Started {
			ss.Busy = ptr(st.Busy.Seconds())
		}
		if st.IO.Known {
			ss.IORead, ss.IOWritten = ptr(st.IO.Rchar), ptr(st.IO.Wchar)
		}
		for _, o := range st.Outputs {
			os := OutputStats{Output: o.Output, Peak: o.Peak, Spilled: o.Spilled}
			if o.Counted {
				os.Bytes, os.Starved = ptr(o.Bytes), ptr(o.Starved.Seconds())
			}
			if r, ok := outputReader(g, i, o.Output); ok {
				n, c := statsNumber(g.Stages[r])
				os.Reader, os.ReaderCopy, os.readerIndex = ptr(n), c, r
			}
			ss.Outputs = append(ss.Outputs, os)
		}
		rs.Stages = append(rs.Stages, ss)
	}
	if busiest >= 0 {
		rs.Stages[busiest].Busiest = true
	}
	fullest, longest := -1, time.Duration(0)
	for k, e := range g.Edges {
		es := EdgeStats{Number: k + 1, From: statsEnd(g, e.From), To: statsEnd(g, e.To), Transport: choices[k].Transport.String()}
		var c plumbing.Count
		if snap != nil && k < len(snap.Edges) {
			c = snap.Edges[k]
		}
		if c.Known {
			es.Counted = true
			es.Bytes, es.Written = ptr(c.Read), ptr(c.Written)
			es.Blocked, es.Starved = ptr(c.Blocked.Seconds()), ptr(c.Starved.Seconds())
			if d := edgeSpan(res, e); d > 0 {
				es.Rate = ptr(float64(c.Read) / d.Seconds())
			}
			if c.Blocked > longest {
				fullest, longest = k, c.Blocked
			}
			if c.Written != c.Read {
				es.Note = fmt.Sprintf("%d bytes written were never read", c.Written-c.Read)
			}
		} else if o, ok := writerOutput(res.Statuses[e.From.Stage], e.From); ok {
			// A fan-out builtin inside gpipe writes it (par's dealer to
			// a copy): it counted what it wrote, and how long the output
			// waited for input to write.
			es.Counted = true
			es.Bytes, es.Written = ptr(uint64(o.Bytes)), ptr(uint64(o.Bytes))
			es.Starved = ptr(o.Starved.Seconds())
			if d := edgeSpan(res, e); d > 0 {
				es.Rate = ptr(float64(o.Bytes) / d.Seconds())
			}
			es.Note = "counted by its writer, a builtin: the bytes it wrote, and how long it had nothing for the reader"
		} else {
			es.Note = "not counted: gpipe counts the bytes of rings only, and this edge is a " + es.Transport
			if w := res.Statuses[e.From.Stage].IO; w.Known {
				es.Note += fmt.Sprintf("; its writer wrote %d bytes in all (/proc/PID/io)", w.Wchar)
			}
		}
		rs.Edges = append(rs.Edges, es)
	}
	if fullest >= 0 && longest > wall/20 {
		// A writer that waited a moment is no bottleneck worth a mark.
		rs.Edges[fullest].Fullest = true
	}
	return rs
}

// writerOutput is what the fan-out builtin st reported of its output
// port p, if it did.
func writerOutput(st stage.Status, p parser.Port) (builtins.OutputStats, bool) {
	name := p.Name
	if p.FD == 1 && name == "" {
		name = "standard output"
	}
	for _, o := range st.Outputs {
		if o.Output == name && o.Counted {
			return o, true
		}
	}
	return builtins.OutputStats{}, false
}

// outputReader finds the stage that reads the output a fan-out builtin,
// stage i, names "standard output" or by a port's "/dev/fd/N".
func outputReader(g *parser.Graph, i int, name string) (int, bool) {
	fd := 1
	if name != "standard output" && name != "-" {
		n, ok := strings.CutPrefix(name, "/dev/fd/")
		if !ok {
			return 0, false
		}
		var err error
		if fd, err = strconv.Atoi(n); err != nil {
			return 0, false
		}
	}
	if k, ok := g.EdgeAt(parser.Port{Stage: i, FD: fd}); ok && g.Edges[k].From.Stage == i {
		return g.Edges[k].To.Stage, true
	}
	return 0, false
}

// edgeSpan is how long an edge was in use: from the first of its two
// stages to begin to the last to end.
func edgeSpan(res *stage.Result, e *parser.Edge) time.Duration {
	a, b := res.Statuses[e.From.Stage], res.Statuses[e.To.Stage]
	if a.Began.IsZero() || b.Began.IsZero() || a.Ended.IsZero() || b.Ended.IsZero() {
		return 0
	}
	begin, end := a.Began, a.Ended
	if b.Began.Before(begin) {
		begin = b.Began
	}
	if b.Ended.After(end) {
		end = b.Ended
	}
	return end.Sub(begin)
}

func kindOf(c stage.Command) string {
	switch {
	case c.Builtin != "" && c.InProcess:
		return "builtin"
	case c.Builtin != "":
		return "builtin-process"
	case c.Path != "":
		return "program"
	}
	return "none"
}

// reasonOf says in words how a stage ended.
func reasonOf(st stage.Status) string {
	switch {
	case st.Skipped:
		return "not started: the start was abandoned"
	case st.Err != nil:
		return "not started: " + st.Err.Error()
	case !st.Started:
		return "nothing to run"
	case st.BrokenPipe():
		return "broken pipe"
	case st.Signal != 0:
		return "killed by " + signalName(st.Signal)
	case st.InputBroken:
		return fmt.Sprintf("exited %d: its input was broken off", st.Code)
	}
	return fmt.Sprintf("exited %d", st.Code)
}

func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

func ptr[T any](v T) *T { return &v }

// WriteJSON writes the JSON form, indented, one object.
func (rs *Stats) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}

// WriteText writes the table people read at a glance: a line per
// stage, then a line per edge, each part aligned, with human sizes, the
// busiest stage and the fullest edge marked.
func (rs *Stats) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gpipe: stats: exit %d", rs.ExitCode)
	if rs.Signal != nil {
		fmt.Fprintf(&b, " (torn down by %s)", *rs.Signal)
	}
	fmt.Fprintf(&b, ", %s\n", secs(&rs.Wall))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  stage\tat\tpid\tstatus\twall\tcpu\tuser\tsys\tmax rss\tread\twritten\tcommand\t")
	// As --status lists them: a par stage's copies after it.
	listed := append([]StageStats(nil), rs.Stages...)
	sort.SliceStable(listed, func(a, b int) bool {
		return listed[a].Number < listed[b].Number || (listed[a].Number == listed[b].Number && listed[a].Copy < listed[b].Copy)
	})
	for _, s := range listed {
		mark := ""
		if s.Busiest {
			mark = "← busiest"
		}
		pid := "-"
		if s.Pid != nil {
			pid = fmt.Sprint(*s.Pid)
		} else if s.Kind == "builtin" && s.Started {
			pid = "gpipe"
		}
		status := s.Reason
		if s.Status != nil && (s.Signal != nil || strings.HasPrefix(status, "broken")) {
			status += fmt.Sprintf(" (%d)", *s.Status)
		}
		if len(status) > 40 {
			status = status[:39] + "…"
		}
		rss := "-"
		if s.MaxRSS != nil {
			rss = humanBytes(float64(*s.MaxRSS))
		}
		read, written := "-", "-"
		if s.IORead != nil {
			read, written = humanBytes(float64(*s.IORead)), humanBytes(float64(*s.IOWritten))
		}
		command := s.Command
		if len(command) > 40 {
			command = command[:39] + "…"
		}
		if mark != "" {
			command += "  " + mark
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.shortName(), s.Position, pid, status,
			secs(s.Wall), secs(s.CPU), secs(s.User), secs(s.System), rss, read, written, command)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rs.Edges) > 0 {
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  edge\ttransport\tbytes\trate\twriter blocked\treader starved\t")
		for _, e := range rs.Edges {
			bytes, rate := "-", "-"
			if e.Bytes != nil {
				bytes = humanBytes(float64(*e.Bytes))
			}
			if e.Rate != nil {
				rate = humanBytes(*e.Rate) + "/s"
			}
			mark := ""
			switch {
			case !e.Counted:
				mark = "(not counted: a " + e.Transport + ")"
			case e.Fullest:
				mark = "← fullest"
			}
			fmt.Fprintf(tw, "  %d: %s → %s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Number, rs.Stages[e.From.index].shortName(), rs.Stages[e.To.index].shortName(),
				e.Transport, bytes, rate, secs(e.Blocked), secs(e.Starved), mark)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var queued []string
	for _, s := range rs.Stages {
		for _, o := range s.Outputs {
			to := ""
			if o.Reader != nil {
				to = " → " + rs.Stages[o.readerIndex].shortName()
			}
			queued = append(queued, fmt.Sprintf("  %s %s%s\t%s\t%s\t\n", s.shortName(), o.Output, to,
				humanBytes(float64(o.Peak)), humanBytes(float64(o.Spilled))))
		}
	}
	if len(queued) > 0 {
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  fan-out output\tqueued at most\tspilled\t")
		for _, l := range queued {
			fmt.Fprint(tw, l)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	// tabwriter pads the last cells: trailing blanks go.
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

func (s StageStats) shortName() string {
	number := fmt.Sprint(s.Number)
	if s.Copy > 0 {
		number += fmt.Sprintf(".%d", s.Copy)
	}
	if s.Name == "" {
		return number
	}
	return number + " " + s.Name
}

// secs shows a time in seconds, "-" when unknown.
func secs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fs", *v)
}
