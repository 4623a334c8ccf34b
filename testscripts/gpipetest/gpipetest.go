package gpipetest

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/internal/procs"
)

// Setup adds the package's commands and conditions to p, in the manner of
// gotooltest.Setup: p's own Setup still runs (after the package's), and a
// command or condition p already has keeps its meaning. Call it before
// testscript.Run.
func Setup(p *testscript.Params) {
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		st := &state{deadline: scriptDeadline(env), bg: map[string]*background{}, awaited: map[string]*background{}}
		env.Values[stateKey{}] = st
		env.Defer(st.cleanUp)
		if setup != nil {
			return setup(env)
		}
		return nil
	}
	if p.Cmds == nil {
		p.Cmds = map[string]func(*testscript.TestScript, bool, []string){}
	}
	for name, cmd := range commands() {
		if _, ok := p.Cmds[name]; !ok {
			p.Cmds[name] = cmd
		}
	}
	cond := p.Condition
	p.Condition = func(c string) (bool, error) {
		if ok, known, err := condition(c); known {
			return ok, err
		}
		if cond != nil {
			return cond(c)
		}
		return false, fmt.Errorf("unknown condition %q", c)
	}
}

// commands are the package's script commands by name. They need the
// state that Setup's hook gives each script.
func commands() map[string]func(*testscript.TestScript, bool, []string) {
	return map[string]func(*testscript.TestScript, bool, []string){
		"pipe":       cmdPipe,
		"await":      cmdAwait,
		"status":     cmdStatus,
		"signal":     cmdSignal,
		"waitout":    cmdWaitout,
		"waitfile":   cmdWaitfile,
		"gone":       cmdGone,
		"nochildren": cmdNochildren,
	}
}

// stateKey is the key of a script's state in testscript.Env.Values.
type stateKey struct{}

// state is what the package keeps for one script: its background
// pipelines, the status of its last pipeline, and until when it may wait.
type state struct {
	deadline time.Time
	bg       map[string]*background // by name, until awaited
	awaited  map[string]*background // by name, once awaited
	all      []*background          // every pipeline started, for cleanUp
	last     *outcome               // of the last pipe or await
}

// stateOf is ts's state; a script of Params that Setup did not see
// cannot use the commands.
func stateOf(ts *testscript.TestScript) *state {
	st, _ := ts.Value(stateKey{}).(*state)
	if st == nil {
		ts.Fatalf("gpipetest: the script's Params did not go through gpipetest.Setup")
	}
	return st
}

// scriptDeadline is when the package's waits give up: before the test's
// own deadline (go test -timeout), by a tenth of the time left and at
// least teardownMargin (but no more than half of it), so that a hang
// fails with what was waited for, and what was torn down, rather than
// with the test binary's panic. Without a test deadline, a day.
func scriptDeadline(env *testscript.Env) time.Time {
	now := time.Now()
	if t, ok := env.T().(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := t.Deadline(); ok {
			left := d.Sub(now)
			return now.Add(left - min(max(left/10, teardownMargin), left/2))
		}
	}
	return now.Add(24 * time.Hour)
}

// teardownMargin is what a teardown at the deadline may take: a
// pipeline's grace and the wait for it (stop), then the script's end
// (cleanUp), with a second to report.
const teardownMargin = 3*grace + time.Second

// poll calls done every few milliseconds until it reports true, or the
// script's deadline passes: then it reports false.
func (st *state) poll(done func() bool) bool {
	for {
		if done() {
			return true
		}
		if time.Now().After(st.deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// await waits until ch is closed, or the script's deadline passes: then
// it reports false.
func (st *state) await(ch <-chan struct{}) bool {
	t := time.NewTimer(time.Until(st.deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// waited is how long a wait that gave up waited, for its message.
func (st *state) waited(since time.Time) string {
	return time.Since(since).Round(time.Millisecond).String()
}

// cleanUp ends what the script left running, at its end: each background
// pipeline still running is torn down (SIGTERM to its stages, SIGKILL
// after a grace), and what is left of the process group and the tagged
// processes of every pipeline is killed.
func (st *state) cleanUp() {
	var wg sync.WaitGroup
	for _, b := range st.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.stop()
		}()
	}
	wg.Wait()
}

// condition answers the package's conditions; known is false for any
// other.
//
//	[tty]            the process can open a terminal (/dev/tty)
//	[pipemax:SIZE]   a pipe can be given SIZE bytes of capacity (F_SETPIPE_SZ)
//	[builtin:NAME]   gpipe has a builtin NAME
func condition(c string) (ok, known bool, err error) {
	name, arg, _ := strings.Cut(c, ":")
	switch name {
	case "tty":
		fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, true, nil
		}
		unix.Close(fd)
		return true, true, nil
	case "pipemax":
		size, err := builtins.ParseSize(arg)
		if err != nil {
			return false, true, fmt.Errorf("[pipemax:%s]: %v", arg, err)
		}
		return pipeCanHold(size), true, nil
	case "builtin":
		if arg == "" {
			return false, true, fmt.Errorf("[builtin:NAME] needs a name")
		}
		_, ok := builtins.Default()[arg]
		return ok, true, nil
	}
	return false, false, nil
}

// pipeCanHold reports whether a pipe of this process can be given size
// bytes of capacity.
func pipeCanHold(size int64) bool {
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC) != nil {
		return false
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if size > 1<<31-1 {
		return false
	}
	got, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, int(size))
	return err == nil && int64(got) >= size
}

// signalNumber is the signal that name ("TERM", "SIGTERM", "15") names.
func signalNumber(name string) (unix.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name = strings.ToUpper(name)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if s := unix.SignalNum(name); s != 0 {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %s", name)
}

// backgroundName is the name in a trailing "&name&" (or "" for "&"),
// and the arguments without it; ok is false when there is none.
func backgroundName(args []string) (name string, rest []string, ok bool) {
	if len(args) == 0 {
		return "", args, false
	}
	last := args[len(args)-1]
	if last == "&" {
		return "", args[:len(args)-1], true
	}
	if len(last) > 2 && last[0] == '&' && last[len(last)-1] == '&' {
		name = last[1 : len(last)-1]
		if !slices.ContainsFunc([]rune(name), func(r rune) bool {
			return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return name, args[:len(args)-1], true
		}
	}
	return "", args, false
}

// pidsIn lists the processes of process group pgid (none for 0) and
// those whose environment holds tag, that have not ended.
func pidsIn(pgid int, tag string) []int {
	var pids []int
	if tag != "" {
		pids = procs.Tagged(tag)
	}
	if pgid <= 0 {
		return pids
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(pids, pid) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) S ppid pgrp …": the command name may hold anything.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[0] != "Z" && f[0] != "X" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
