package report

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// --progress shows how many bytes every edge carried so far, and how fast,
// on gpipe's stderr. A goroutine takes a Snapshot of the pipeline on a
// timer and reads the counters it holds: nothing of it is on the data
// path. On a terminal it redraws one line per edge in place; elsewhere it
// prints a line per edge every few seconds, and a last set at the end.

const (
	// progressRedraw is how often --progress redraws its lines on a
	// terminal.
	progressRedraw = 200 * time.Millisecond
	// progressEvery is how often --progress prints its lines when stderr
	// is not a terminal.
	progressEvery = 2 * time.Second
)

// How an edge without a ring's counters is counted: from the /proc/PID/io
// of the process at one end, when there is one.
const (
	countNone   = iota // nothing to count it by
	countWriter        // the writer's wchar
	countReader        // the reader's rchar
)

// progressEdge is what --progress knows of an edge before the run.
type progressEdge struct {
	name   string // "edge 1: stage 1 (gen) → stage 2 (cat)"
	count  int    // countNone, countWriter or countReader, for an edge with no ring
	shared bool   // the process counted also reads or writes other edges
	size   uint64 // a ring's capacity; 0 for a pipe or FIFO
	total  int64  // the bytes it will carry, when known before the run; -1 if not
}

// Progress draws or prints the edges' figures on w (--progress). Its
// methods run on the goroutine of Run, and Finish once Run has returned;
// but OnEvent, which runs on the supervisor's and touches only the
// terminal (mu, shown, paused).
type Progress struct {
	w     io.Writer
	fd    int  // w's descriptor, to ask a terminal its width
	tty   bool // w is a terminal: redraw in place
	g     *parser.Graph
	edges []progressEdge
	began time.Time

	// The figures of the last draws or prints, for the rates: the oldest
	// is the first taken within the last rateWindow, or before it.
	samples []sample

	// mu orders the writes to the terminal: Run's, and OnEvent's from
	// the supervisor's goroutine. It guards shown.
	mu    sync.Mutex
	shown int // how many lines the terminal shows now, below the cursor's row
	// paused is set while a stage is stopped (Ctrl-Z): nothing is drawn.
	paused atomic.Bool

	stop chan struct{} // closed by Finish
	done chan struct{} // closed when Run returns
}

// NewProgress prepares --progress for a run of g, right before it starts:
// the totals known ahead are the sizes of the files the pipeline will read
// (see knownTotals), and stdin is gpipe's own. The caller hands OnEvent to
// stage.Options.OnEvent (with MeasureIO set), starts Run on a goroutine of
// its own once the run has started, and calls Finish once it has ended.
func NewProgress(w *os.File, g *parser.Graph, cmds []stage.Command, plan *plumbing.Plan, stdin *os.File) *Progress {
	p := &Progress{
		w: w, fd: int(w.Fd()), tty: isTerminal(w), g: g, began: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	p.samples = []sample{{at: p.began, bytes: make([]uint64, len(g.Edges)), known: make([]bool, len(g.Edges))}}
	for i := range g.Edges {
		p.samples[0].known[i] = true // nothing carried before the start
	}
	totals := knownTotals(g, cmds, stdin)
	for i, e := range g.Edges {
		pe := progressEdge{
			name:  fmt.Sprintf("edge %d: %s → %s", i+1, PortName(g, e.From, 1), PortName(g, e.To, 0)),
			size:  plan.Meters[i].Size(),
			total: totals[i],
		}
		if plan.Meters[i] == nil {
			// The writer's wchar first: the reader's rchar also counts
			// what its loader and its own files gave it. Either is exact
			// only for a process with no other edge on that side.
			writer, reader := isProcess(cmds[e.From.Stage]), isProcess(cmds[e.To.Stage])
			wShared := len(g.Out(e.From.Stage)) > 1 || g.Shared(e.From)
			rShared := len(g.In(e.To.Stage)) > 1 || g.Shared(e.To)
			switch {
			case writer && (!wShared || !reader || rShared):
				pe.count, pe.shared = countWriter, wShared
			case reader:
				pe.count, pe.shared = countReader, rShared
			}
		}
		p.edges = append(p.edges, pe)
	}
	return p
}

// isProcess says the stage runs as a process of its own, whose /proc
// entry gpipe can read.
func isProcess(c stage.Command) bool {
	return !c.InProcess && (c.Path != "" || c.Builtin != "")
}

// OnEvent is the pipeline's Options.OnEvent. A stage stopped by a signal
// (Ctrl-Z) stops the pipeline and then gpipe, right after this event:
// the lines are erased here, on the supervisor's goroutine, so that the
// shell's "Stopped" and prompt come on a clean screen, and nothing is
// drawn until a stage continues. Should Run be drawing just then, the
// erase is left to it (TryLock), so that the supervisor never waits for
// it; a write that blocks (the terminal's output suspended by Ctrl-S)
// would hold the supervisor up, as it holds up every stage that writes
// to the terminal.
func (p *Progress) OnEvent(e stage.Event) {
	switch e.Kind {
	case stage.StoppedBy:
		p.paused.Store(true)
		if p.mu.TryLock() {
			p.eraseLocked()
			p.mu.Unlock()
		}
	case stage.Continued:
		p.paused.Store(false)
	}
}

// Run draws (on a terminal) or prints the figures on a timer until Finish.
// snapshot is the running pipeline's Snapshot.
func (p *Progress) Run(snapshot func() *stage.Snapshot) {
	defer close(p.done)
	every := progressEvery
	if p.tty {
		every = progressRedraw
		if snap := snapshot(); p.foreground(snap) {
			p.draw(snap)
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			snap := snapshot()
			switch {
			case !p.tty:
				p.print(snap)
			case p.paused.Load() || anyStopped(snap) || !p.foreground(snap):
				p.erase() // shown again once continued, or in the foreground
			default:
				p.draw(snap)
			}
		}
	}
}

// Finish stops the timer and, on a terminal, erases the lines; elsewhere
// it prints the last figures, from final, the ended pipeline's Snapshot.
func (p *Progress) Finish(final *stage.Snapshot) {
	close(p.stop)
	<-p.done
	if p.tty {
		p.erase()
		return
	}
	var b strings.Builder
	elapsed := final.At.Sub(p.began)
	for i, f := range p.measure(final) {
		b.WriteString("gpipe: progress: " + p.edges[i].name + ": ")
		switch {
		case !f.known:
			b.WriteString(f.why)
		default:
			fmt.Fprintf(&b, "%d bytes in total", f.bytes)
			if f.bytes >= 1024 {
				fmt.Fprintf(&b, " (%s)", humanBytes(float64(f.bytes)))
			}
			if f.ring && f.read != f.bytes {
				fmt.Fprintf(&b, ", %d read", f.read)
			}
			if elapsed > 0 {
				fmt.Fprintf(&b, ", %s/s on average", humanBytes(float64(f.bytes)/elapsed.Seconds()))
			}
			if f.note != "" {
				b.WriteString(" (" + f.note + ")")
			}
		}
		if f.mark != "" {
			// Once every stage has ended, only an edge never opened.
			b.WriteString(" — " + f.mark)
		}
		b.WriteString("\n")
	}
	io.WriteString(p.w, b.String())
}

// edgeFigures is what one Snapshot says of one edge.
type edgeFigures struct {
	known bool   // bytes is a count
	bytes uint64 // written into the edge (a ring's), or by its writer or read by its reader (/proc)
	read  uint64 // a ring's bytes read
	ring  bool
	note  string // where the count comes from, when not from a ring
	why   string // why there is no count, when there is none
	mark  string // what holds the edge back, if anything
}

// measure reads every edge's figures from snap.
func (p *Progress) measure(snap *stage.Snapshot) []edgeFigures {
	out := make([]edgeFigures, len(p.edges))
	for i, e := range p.g.Edges {
		pe, c := p.edges[i], snap.Edges[i]
		from, to := snap.Stages[e.From.Stage], snap.Stages[e.To.Stage]
		f := &out[i]
		var end stage.StageState
		switch pe.count {
		case countWriter:
			end, f.note, f.bytes = from, "writer's wchar from /proc", from.IO.Wchar
		case countReader:
			end, f.note, f.bytes = to, "reader's rchar from /proc", to.IO.Rchar
		}
		if pe.shared {
			f.note += ", all of its I/O"
		}
		switch {
		case c.Known:
			f.known, f.ring, f.bytes, f.read, f.note = true, true, c.Written, c.Read, ""
		case pe.count == countNone:
			f.why = "not counted: a pipe between builtins inside gpipe, which is not in its data path"
		case end.IO.Known:
			f.known = true
		case end.State == stage.NotStarted:
			f.why = "not counted: " + end.Stage.Name() + " did not start"
		default:
			f.why = "not counted: no figures from " + end.Stage.Name() + "'s /proc/PID/io yet"
		}
		f.mark = p.mark(i, snap)
	}
	return out
}

// mark says what holds edge i back, if anything: its writer waits for
// room (a ring nearly full, or a writer asleep in pipe_write), so the
// reader holds it back; its reader waits for data (a ring empty, or a
// reader asleep in pipe_read) while the writer runs, so the writer holds
// it back; or an end never started, so the edge was never opened. The
// stage that the marks point to from both sides holds the pipeline back.
func (p *Progress) mark(i int, snap *stage.Snapshot) string {
	e, pe, c := p.g.Edges[i], p.edges[i], snap.Edges[i]
	from, to := snap.Stages[e.From.Stage], snap.Stages[e.To.Stage]
	switch {
	case from.State == stage.NotStarted:
		return "not open: " + from.Stage.Name() + " did not start"
	case to.State == stage.NotStarted:
		return "not open: " + to.Stage.Name() + " did not start"
	case from.State != stage.Running || to.State != stage.Running:
		return ""
	}
	full := strings.HasSuffix(from.Wchan, "pipe_write")
	empty := strings.HasSuffix(to.Wchan, "pipe_read")
	if c.Known {
		// A writer sleeps once less than a step (an eighth of the ring)
		// is free; it may be between two sleeps when looked at.
		full = c.WriterWaits || (pe.size > 0 && c.Queued() > pe.size-pe.size/8)
		empty = c.ReaderWaits || c.Queued() == 0
	}
	switch {
	case full:
		return "full: " + to.Stage.Name() + " holds it back"
	case empty:
		return "empty: " + from.Stage.Name() + " holds it back"
	}
	return ""
}

// progressLine is one edge's line in parts: its figures, with a bar
// (bar) or without (figures), where they come from (note) and what holds
// the edge back (mark). A terminal too narrow for the whole line loses
// the note first, then the bar.
type progressLine struct{ figures, bar, note, mark string }

func (l progressLine) String() string { return l.text(true, true) }

func (l progressLine) text(bar, note bool) string {
	s := l.figures
	if bar && l.bar != "" {
		s = l.bar
	}
	if note && l.note != "" {
		s += " (" + l.note + ")"
	}
	if l.mark != "" {
		s += " — " + l.mark
	}
	return s
}

// sample is the edges' counts at one moment, for the rates.
type sample struct {
	at    time.Time
	bytes []uint64
	known []bool
}

// rateWindow is the least time a rate is taken over: the last interval
// when not on a terminal; on a terminal, the last second or a little more,
// since it redraws more often than a process's writes show in its wchar
// (a write counts once it returns: cat's 128 KiB at a time).
const rateWindow = time.Second

// lines renders every edge's line from snap, with the rates over the
// window since an earlier call.
func (p *Progress) lines(snap *stage.Snapshot) []progressLine {
	figs := p.measure(snap)
	now := sample{at: snap.At, bytes: make([]uint64, len(figs)), known: make([]bool, len(figs))}
	for i, f := range figs {
		now.bytes[i], now.known[i] = f.bytes, f.known
	}
	// The newest sample at least a window old, or the oldest there is.
	for len(p.samples) > 1 && snap.At.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	var then *sample
	if len(p.samples) > 0 && snap.At.Sub(p.samples[0].at) >= progressRedraw/4 {
		then = &p.samples[0]
	}
	out := make([]progressLine, len(figs))
	for i, f := range figs {
		pe := p.edges[i]
		l := &out[i]
		l.mark = f.mark
		if !f.known {
			l.figures = f.why
			continue
		}
		l.note = f.note
		var b, withBar strings.Builder
		b.WriteString(humanBytes(float64(f.bytes)))
		if pe.total >= 0 {
			pct := 100
			if pe.total > 0 {
				pct = int(min(100, f.bytes*100/uint64(pe.total)))
			}
			withBar.WriteString(b.String())
			fmt.Fprintf(&withBar, " of %s %s %3d%%", humanBytes(float64(pe.total)), progressBar(pct), pct)
			fmt.Fprintf(&b, " of %s (%d%%)", humanBytes(float64(pe.total)), pct)
		}
		var rest strings.Builder
		if then != nil && then.known[i] && f.bytes >= then.bytes[i] {
			rate := float64(f.bytes-then.bytes[i]) / snap.At.Sub(then.at).Seconds()
			fmt.Fprintf(&rest, ", %s/s", humanBytes(rate))
			if pe.total >= 0 && rate > 0 && f.bytes < uint64(pe.total) {
				rest.WriteString(", ETA " + eta(float64(uint64(pe.total)-f.bytes)/rate))
			}
		}
		l.figures = b.String() + rest.String()
		if withBar.Len() > 0 {
			l.bar = withBar.String() + rest.String()
		}
	}
	p.samples = append(p.samples, now)
	return out
}

// print writes the plain lines, for a stderr that is not a terminal.
func (p *Progress) print(snap *stage.Snapshot) {
	var b strings.Builder
	for i, l := range p.lines(snap) {
		b.WriteString("gpipe: progress: " + p.edges[i].name + ": " + l.text(false, true) + "\n")
	}
	io.WriteString(p.w, b.String())
}

// draw redraws the lines on the terminal, in one write. The cursor is
// left at the start of the row above them, a row kept empty: what a stage
// writes to the terminal meanwhile lands there, on a clean row, and pushes
// the lines down, and the next draw erases from the cursor down and draws
// them again below it. A stage's line still without its newline may be
// cut by the next draw.
func (p *Progress) draw(snap *stage.Snapshot) {
	lines := p.lines(snap)
	if len(lines) == 0 {
		return
	}
	width := 0
	if ws, err := unix.IoctlGetWinsize(p.fd, unix.TIOCGWINSZ); err == nil {
		width = int(ws.Col)
	}
	var b strings.Builder
	b.WriteString("\x1b[J") // the lines drawn before, from the cursor down
	for i, l := range lines {
		text := p.edges[i].name + ": " + l.String()
		for _, shorter := range []string{l.text(true, false), l.text(false, false)} {
			if width > 1 && runeCount(text) >= width {
				text = p.edges[i].name + ": " + shorter
			}
		}
		if width > 1 {
			// A wrapped line would take two rows, and the cursor would
			// not go back up to where the lines begin.
			text = truncateRunes(text, width-1)
		}
		b.WriteString("\n\r\x1b[K" + text)
	}
	fmt.Fprintf(&b, "\x1b[%dA\r", len(lines))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused.Load() {
		p.eraseLocked() // a stage stopped while this was drawn
		return
	}
	io.WriteString(p.w, b.String())
	p.shown = len(lines)
}

// erase removes the lines from the terminal, leaving the cursor where
// they began: the terminal as it was, but for what the stages wrote.
func (p *Progress) erase() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.eraseLocked()
}

func (p *Progress) eraseLocked() {
	if p.shown == 0 {
		return
	}
	io.WriteString(p.w, "\x1b[J")
	p.shown = 0
}

// foreground says the lines may be drawn on the terminal: gpipe or its
// pipeline is in its foreground, as pv asks. A pipeline in the background
// (gpipe … &) draws nothing over the shell's prompt, and never gets
// SIGTTOU for it when the terminal has "stty tostop". A terminal that is
// not gpipe's controlling terminal is drawn on.
func (p *Progress) foreground(snap *stage.Snapshot) bool {
	fg, err := unix.IoctlGetInt(p.fd, unix.TIOCGPGRP)
	if err != nil || fg == unix.Getpgrp() {
		return true
	}
	for _, st := range snap.Stages {
		if st.State == stage.Running && st.Pid != 0 {
			// A process of the pipeline: its group has the terminal
			// when gpipe handed it over.
			if pg, err := unix.Getpgid(st.Pid); err == nil && pg == fg {
				return true
			}
		}
	}
	return false
}

// isTerminal says f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func anyStopped(snap *stage.Snapshot) bool {
	for _, st := range snap.Stages {
		if st.State == stage.Stopped {
			return true
		}
	}
	return false
}

func runeCount(s string) int { return len([]rune(s)) }

func truncateRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// progressBar is a bar 20 characters wide, pct percent of it filled.
func progressBar(pct int) string {
	const width = 20
	n := pct * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// humanBytes shows a byte count or rate in binary units: "512 B",
// "12.0 MiB".
func humanBytes(n float64) string {
	if n < 1024 {
		return strconv.FormatFloat(math.Floor(n), 'f', 0, 64) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := -1
	for n >= 1024 && u < len(units)-1 {
		n /= 1024
		u++
	}
	return strconv.FormatFloat(n, 'f', 1, 64) + " " + units[u]
}

// eta shows the seconds left: "12s", "3m05s", "2h07m".
func eta(secs float64) string {
	s := int64(math.Ceil(secs))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 100*3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
	}
	return ">99h"
}
