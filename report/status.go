package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// PrintStatus prints every stage's exit status after the run (--status),
// one line each, like bash's PIPESTATUS: a stage gpipe added says so, and
// one in a process substitution or past the first line gives its place.
func PrintStatus(w io.Writer, res *stage.Result) {
	listed := append([]stage.Status(nil), res.Statuses...)
	sort.SliceStable(listed, func(a, b int) bool { return parser.ListedBefore(listed[a].Stage, listed[b].Stage) })
	for _, s := range listed {
		where := ""
		switch {
		case s.Stage.Added != "":
			where = " (added by gpipe)"
		case s.Stage.Parent != nil || s.Stage.Pos.Line > 1:
			where = " at " + s.Stage.Pos.String()
		}
		fmt.Fprintf(w, "gpipe: status: %s%s: %s\n", s.Stage.Name(), where, s)
	}
}

// PrintLive prints what SIGUSR1 asks for: one line per stage (state, pid,
// time since it began, CPU so far) and one per edge (bytes so far and the
// sides' waits, where gpipe can see them: the figures of --stats so far),
// in one write so that the lines come out together.
func PrintLive(w io.Writer, g *parser.Graph, plan *plumbing.Plan, snap *stage.Snapshot) {
	var b strings.Builder
	for _, i := range g.Listed() { // a par stage's copies after it
		st := snap.Stages[i]
		fmt.Fprintf(&b, "gpipe: live: %s: %s", st.Stage.Name(), st.State)
		switch {
		case st.State == stage.NotStarted:
			fmt.Fprintf(&b, " (%s)\n", st.Status)
			continue
		case st.State == stage.Ended:
			fmt.Fprintf(&b, ", status %s, after %s", st.Status, seconds(st.Ended.Sub(st.Began)))
		case st.InProcess:
			fmt.Fprintf(&b, " inside gpipe, for %s", seconds(snap.At.Sub(st.Began)))
		default:
			fmt.Fprintf(&b, ", pid %d, for %s", st.Pid, seconds(snap.At.Sub(st.Began)))
		}
		if !st.InProcess {
			// The figures --stats gives at the end, so far.
			fmt.Fprintf(&b, ", cpu %s (user %s, sys %s)", seconds(st.CPU), seconds(st.User), seconds(st.System))
			if st.MaxRSS > 0 {
				fmt.Fprintf(&b, ", max rss %s", humanBytes(float64(st.MaxRSS)))
			}
			if st.IO.Known {
				fmt.Fprintf(&b, ", read %s, wrote %s", humanBytes(float64(st.IO.Rchar)), humanBytes(float64(st.IO.Wchar)))
			}
		}
		b.WriteString("\n")
	}
	for i, e := range g.Edges {
		fmt.Fprintf(&b, "gpipe: live: edge %d: %s → %s: %s: ", i+1, PortName(g, e.From, 1), PortName(g, e.To, 0), plan.Choices[i].Transport)
		if c := snap.Edges[i]; c.Known {
			fmt.Fprintf(&b, "%d bytes written, %d read, %d queued, writer blocked %s, reader starved %s\n",
				c.Written, c.Read, c.Queued(), seconds(c.Blocked), seconds(c.Starved))
		} else {
			b.WriteString("bytes not visible to gpipe (it is not in the data path)\n")
		}
	}
	io.WriteString(w, b.String())
}

// seconds shows a duration as seconds with two decimals: "1.52s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}
