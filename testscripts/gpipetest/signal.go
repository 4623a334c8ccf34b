package gpipetest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/internal/procs"
)

// signalName is "SIGTERM" for SIGTERM; "" for a number unix has no name for.
func signalName(s syscall.Signal) string { return unix.SignalName(s) }

// cmdSignal sends a signal to a background command, or to the processes
// a file lists:
//
//	signal [-SIG] [-group] NAME
//	signal [-SIG] -pidfile FILE
//
// SIG is a name (TERM, SIGTERM) or a number; the default is TERM. A
// pipeline started by pipe gets it in each of its stages' processes, or
// with -group in its whole process group (its stages and what they
// started). A command exec started gets it in its process; exec leaves it
// in the test's own process group, which -group refuses to signal. With
// -pidfile, every pid FILE lists (as gone reads them: a daemon's pid
// file, or one a stage wrote) gets it.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if neg {
		ts.Fatalf("unsupported: ! signal")
	}
	sig, group, pidfile := syscall.SIGTERM, false, false
	for len(args) > 1 && strings.HasPrefix(args[0], "-") {
		if args[0] == "-group" {
			group = true
		} else if args[0] == "-pidfile" {
			pidfile = true
		} else {
			s, err := signalNumber(args[0][1:])
			ts.Check(err)
			sig = s
		}
		args = args[1:]
	}
	if len(args) != 1 || (pidfile && group) || strings.HasPrefix(args[0], "-") {
		ts.Fatalf("usage: signal [-SIG] [-group] NAME | signal [-SIG] -pidfile FILE")
	}
	name := args[0]
	if pidfile {
		for _, pid := range pidsOf(ts, name) {
			if err := syscall.Kill(pid, sig); err != nil {
				ts.Fatalf("signal -pidfile %s: %d: %v", name, pid, err)
			}
		}
		return
	}
	if b := st.bg[name]; b != nil {
		if b.job == nil || b.ended() {
			ts.Fatalf("signal %s: it has ended (%s); await it", name, b.res)
		}
		if pg := b.processGroup(); group && pg > 0 {
			ts.Check(ignoreGone(syscall.Kill(-pg, sig)))
			return
		}
		sent := 0
		if !group {
			for _, s := range b.job.Snapshot().Stages {
				if s.Pid > 0 && s.Ended.IsZero() {
					if err := syscall.Kill(s.Pid, sig); err == nil {
						sent++
					}
				}
			}
		}
		if sent == 0 {
			// Only builtins, inside the test process: as gpipe acts on
			// the signal (a teardown for INT, TERM, HUP and QUIT).
			b.job.Signal(sig)
		}
		return
	}
	cmd, err := execBackground(ts, name)
	if err != nil {
		ts.Fatalf("signal %s: %v", name, err)
	}
	if cmd == nil {
		ts.Fatalf("signal %s: no background command of that name", name)
	}
	if group {
		ts.Fatalf("signal -group %s: exec leaves it in the test's own process group: start it with pipe to signal its group", name)
	}
	ts.Check(ignoreGone(cmd.Process.Signal(sig)))
}

// ignoreGone is err, unless it says the process has ended already, which
// a signal that races with the end of a command may find.
func ignoreGone(err error) error {
	if err == syscall.ESRCH || err == os.ErrProcessDone {
		return nil
	}
	return err
}

// cmdNochildren checks that nothing a background pipeline started is
// still running: no process of its process group, and none with its tag
// in the environment (which catches what left the group, setsid's
// daemons among them). It waits for them to go, until the deadline.
//
//	nochildren NAME
func cmdNochildren(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if neg || len(args) != 1 {
		ts.Fatalf("usage: nochildren NAME")
	}
	b := st.known(ts, args[0])
	if b == nil {
		ts.Fatalf("nochildren %s: no pipe of that name", args[0])
	}
	if !b.ended() {
		ts.Fatalf("nochildren %s: it is still running: await it first", args[0])
	}
	var left []int
	since := time.Now()
	if !st.poll(func() bool {
		left = pidsIn(0, b.tag) // the group's id may be another's by now
		return len(left) == 0
	}) {
		ts.Fatalf("nochildren %s: still running after %s: %s", args[0], st.waited(since), describe(left))
	}
}

// known is the pipeline pipe started as name, running or awaited, or nil;
// a name exec gave fails the script.
func (st *state) known(ts *testscript.TestScript, name string) *background {
	if b := st.bg[name]; b != nil {
		return b
	}
	if b := st.awaited[name]; b != nil {
		return b
	}
	if cmd, _ := execBackground(ts, name); cmd != nil {
		ts.Fatalf("%s was started by exec, which does not say what it started: start it with pipe", name)
	}
	return nil
}

// describe lists pids with their command lines, for a message.
func describe(pids []int) string {
	var parts []string
	for _, pid := range pids {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		parts = append(parts, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
	}
	return strings.Join(parts, ", ")
}

// cmdWaitout waits until a background pipeline's output matches:
//
//	waitout [-stderr] NAME REGEXP
//
// It fails at once if the pipeline ends without a match, and at the
// script's deadline with the output so far.
func cmdWaitout(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if neg {
		ts.Fatalf("unsupported: ! waitout")
	}
	stream := "stdout"
	if len(args) > 0 && args[0] == "-stderr" {
		stream, args = "stderr", args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: waitout [-stderr] NAME REGEXP")
	}
	name := args[0]
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	b := st.bg[name]
	if b == nil {
		if cmd, _ := execBackground(ts, name); cmd != nil {
			ts.Fatalf("waitout %s: exec keeps its output until wait: start it with pipe", name)
		}
		ts.Fatalf("waitout %s: no background pipe of that name", name)
	}
	buf, seen := &b.stdout, &b.seen[0]
	if stream == "stderr" {
		buf, seen = &b.stderr, &b.seen[1]
	}
	// Only the lines after the previous waitout's match count: a second
	// "reloaded" is a second reload.
	match := func() bool {
		out := buf.String()[*seen:]
		if loc := re.FindStringIndex(out); loc != nil {
			// On from the next line: a ^ must not match mid-line.
			end := loc[1]
			if nl := strings.IndexByte(out[end:], '\n'); nl >= 0 && (end == 0 || out[end-1] != '\n') {
				end += nl + 1
			}
			*seen += end
			return true
		}
		return false
	}
	since := time.Now()
	ended := false
	if st.poll(func() bool {
		ended = b.ended() // before the match: the output is complete then
		return match() || ended
	}) && !ended {
		return
	}
	if match() {
		return
	}
	out := buf.String()[*seen:]
	why := "still running after " + st.waited(since)
	if ended {
		why = "it ended (" + b.res.String() + ")"
	}
	ts.Fatalf("waitout %s %q: no match in its %s: %s; %s so far:\n%s", name, args[1], stream, why, stream, out)
}

// cmdWaitfile waits until FILE exists and holds at least N lines (by
// default 1), or a line matching REGEXP:
//
//	waitfile [-lines N] [-match REGEXP] FILE
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if neg {
		ts.Fatalf("unsupported: ! waitfile")
	}
	const usage = "usage: waitfile [-lines N] [-match REGEXP] FILE"
	lines := 1
	var re *regexp.Regexp
	for len(args) > 2 {
		switch args[0] {
		case "-lines":
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				ts.Fatalf("%s", usage)
			}
			lines = n
		case "-match":
			r, err := regexp.Compile("(?m)" + args[1])
			ts.Check(err)
			re = r
		default:
			ts.Fatalf("%s", usage)
		}
		args = args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("%s", usage)
	}
	path := ts.MkAbs(args[0])
	var data []byte
	since := time.Now()
	if st.poll(func() bool {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return false
		}
		if re != nil {
			return re.Match(data)
		}
		return strings.Count(string(data), "\n") >= lines
	}) {
		return
	}
	want := fmt.Sprintf("fewer than %d lines", lines)
	if _, err := os.Stat(path); err != nil {
		want = "no such file"
	} else if re != nil {
		want = fmt.Sprintf("no line matching %q", strings.TrimPrefix(re.String(), "(?m)"))
	}
	ts.Fatalf("waitfile %s: %s after %s; it holds:\n%s", args[0], want, st.waited(since), data)
}

// cmdGone checks that no process whose pid FILE lists (one a line, or
// separated by spaces) still runs, waiting for them to go until the
// deadline. A zombie counts as gone: it no longer runs.
//
//	gone FILE
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	st := stateOf(ts)
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gone FILE")
	}
	pids := pidsOf(ts, args[0])
	var alive []int
	since := time.Now()
	if !st.poll(func() bool {
		alive = alive[:0]
		for _, pid := range pids {
			if procs.Runs(pid) {
				alive = append(alive, pid)
			}
		}
		return len(alive) == 0
	}) {
		ts.Fatalf("gone %s: still running after %s: %s", args[0], st.waited(since), describe(alive))
	}
}

// pidsOf reads the pids that file lists, one a line or separated by
// spaces; a file without any fails the script.
func pidsOf(ts *testscript.TestScript, file string) []int {
	var pids []int
	for _, f := range strings.Fields(ts.ReadFile(file)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			ts.Fatalf("%s: %q is not a pid", file, f)
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		ts.Fatalf("%s: no pids in the file", file)
	}
	return pids
}
