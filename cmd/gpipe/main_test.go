package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/internal/procs"
	"github.com/gpipe/gpipe/testscripts/gpipetest"
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
	p = testscript.Params{
		Dir:                 p.Dir,
		Files:               p.Files,
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			// Under -race, the gpipe processes are this race-enabled
			// binary, which would sleep a second at every exit.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			env.Setenv(procs.DeadlineScaleEnv, os.Getenv(procs.DeadlineScaleEnv))
			// A script's own shell loop that polls /proc every 50 ms
			// ("for i in $(seq $POLLS)") gives up after 10 s, scaled by
			// the knob as every hang deadline is.
			env.Setenv("POLLS", strconv.Itoa(int(math.Ceil(200*procs.DeadlineScale()))))
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
	}
	// The scripts use the commands any project can (pipe, signal,
	// status, waitfile, gone, …): package gpipetest.
	gpipetest.Setup(&p)
	testscript.Run(t, p)
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
