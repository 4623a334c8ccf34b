package main

import (
	"os/exec"
	"sync"

	"golang.org/x/sys/unix"

	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/internal/procs"
)

var update = flag.Bool("u", false, "update testscript golden files in place")

// TestMain lets the test binary play gpipe itself when a script runs
// "exec gpipe …": testscript installs it under that name on PATH.
func TestMain(m *testing.M) {
	// The scripts run gpipe without a controlling terminal, as CI does,
	// whatever terminal the tests were started from; the terminal tests
	// give gpipe one of their own (a pseudo-terminal).
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0); err == nil {
		_ = unix.IoctlSetInt(fd, unix.TIOCNOTTY, 0)
		unix.Close(fd)
	}
	// The tests that run gpipe in this process (run) start pipelines
	// whose guardian and helpers are this binary re-executed.
	engine.Main()
	testscript.Main(m, map[string]func(){
		"gpipe": func() {
			if os.Getenv(isolateEnv) != "" && len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "--gpipe-") && !slices.Contains(os.Args, "--explain") {
				os.Args = append([]string{os.Args[0], "--isolate"}, os.Args[1:]...)
			}
			main()
		},
		"deadline": func() { os.Exit(runDeadline(os.Args[1:])) },
	})
}

// isolateEnv, set in a script's environment, makes the test binary playing
// gpipe run as "gpipe --isolate …": TestScriptsIsolated runs the builtins'
// scripts that way, to hold both hosts of the builtins to the same bytes
// and statuses. A plan (--explain) is left as the script wrote it: it
// names the host.
const isolateEnv = "GPIPE_TEST_ISOLATE"

// TestScripts runs every testscripts/*.txtar through the real gpipe
// program: real processes, real pipes, real coreutils.
func TestScripts(t *testing.T) {
	runScripts(t, testscript.Params{Dir: "../../testscripts"}, false)
}

// TestScriptsIsolated runs the scripts of the builtins once more with
// every builtin in a process of its own (--isolate): the same scripts, so
// the same bytes and statuses.
func TestScriptsIsolated(t *testing.T) {
	files, err := filepath.Glob("../../testscripts/builtin_*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no builtin scripts: %v", err)
	}
	more, _ := filepath.Glob("../../testscripts/transport_*.txtar")
	runScripts(t, testscript.Params{Files: append(files, more...)}, true)
}

func runScripts(t *testing.T, p testscript.Params, isolate bool) {
	testscript.Run(t, testscript.Params{
		Dir:                 p.Dir,
		Files:               p.Files,
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			// Under -race, the gpipe processes are this race-enabled
			// binary, which would sleep a second at every exit.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			env.Setenv(procs.DeadlineScaleEnv, os.Getenv(procs.DeadlineScaleEnv))
			if isolate {
				env.Setenv(isolateEnv, "1")
			}
			// The scripts of examples/ run the files themselves, where
			// they are, so that what users copy is what is tested.
			examples, err := filepath.Abs("../../examples")
			if err != nil {
				return err
			}
			env.Setenv("EXAMPLES", examples)
			// A script that builds a Go program of its own against this
			// checkout (go_api_module.txtar) finds it here, and the go
			// command its caches, offline.
			repo, err := filepath.Abs("../..")
			if err != nil {
				return err
			}
			env.Setenv("GPIPE_REPO", repo)
			for k, v := range goEnv() {
				env.Setenv(k, v)
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "race" {
				return raceEnabled, nil // gpipe is this binary
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"waitfile": cmdWaitfile,
			"gone":     cmdGone,
		},
	})
}

// goEnv is what the go command needs in a script to build offline with
// this machine's caches: testscript gives a script no HOME of its own.
var goEnv = sync.OnceValue(func() map[string]string {
	env := map[string]string{"GOPROXY": "off", "GOSUMDB": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		return env
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if i < len(lines) {
			env[k] = lines[i]
		}
	}
	return env
})

// scriptDeadline bounds every wait a script command does, so that a hang
// fails the test instead of blocking it.
var scriptDeadline = scaled(10 * time.Second)

// cmdWaitfile waits until FILE holds at least N lines (default 1):
//
//	waitfile [-lines N] FILE
//
// Scripts use it to know that background stages have started (each writes
// its pid to FILE) before they signal gpipe.
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! waitfile")
	}
	want := 1
	if len(args) == 3 && args[0] == "-lines" {
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		want, args = n, args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile [-lines N] FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(scriptDeadline)
	for {
		data, err := os.ReadFile(path)
		if err == nil && bytes.Count(data, []byte("\n")) >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile %s: fewer than %d lines after %v", args[0], want, scriptDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cmdGone checks that no process whose pid is listed in FILE (one a line)
// is still running, waiting up to the deadline for them to go:
//
//	gone FILE
//
// A zombie counts as gone: it no longer runs.
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gone FILE")
	}
	var pids []int
	for _, f := range strings.Fields(ts.ReadFile(args[0])) {
		pid, err := strconv.Atoi(f)
		ts.Check(err)
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		ts.Fatalf("gone %s: no pids in the file", args[0])
	}
	deadline := time.Now().Add(scriptDeadline)
	for {
		alive := running(pids)
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("still running after %v: %v", scriptDeadline, alive)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running returns the pids among pids that are still running.
func running(pids []int) []int {
	var alive []int
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The state follows the command name in parentheses: "pid (comm) S …".
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		alive = append(alive, pid)
	}
	return alive
}
