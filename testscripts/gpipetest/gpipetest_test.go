package gpipetest_test

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/internal/procs"
	"github.com/gpipe/gpipe/testscripts/gpipetest"
)

func TestMain(m *testing.M) {
	engine.Main()
	testscript.Main(m, map[string]func(){"server": server})
}

// server is the program the scripts test, as a user's would be: it says
// "listening" on stdout, "reloaded" on stderr at each SIGHUP, and dies of
// SIGTERM, which it does not catch. With an argument, it also writes
// "ready" and "reloaded" to that file, for a script that starts it with
// exec, whose output testscript keeps until wait.
func server() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	fmt.Println("listening")
	if len(os.Args) > 1 {
		if err := os.WriteFile(os.Args[1], []byte("ready\n"), 0o666); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	for range hup {
		fmt.Fprintln(os.Stderr, "reloaded")
		if len(os.Args) > 1 {
			f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				fmt.Fprintln(f, "reloaded")
				f.Close()
			}
		}
	}
}

// TestScripts runs the scripts of testdata/script: each command's
// success paths.
func TestScripts(t *testing.T) {
	p := testscript.Params{Dir: "testdata/script"}
	gpipetest.Setup(&p)
	testscript.Run(t, p)
}

// TestFailures runs scripts that must fail, each with the message that
// says why.
func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"pipe fails", "pipe 'sh -c \"exit 3\"'",
			`pipe 'sh -c "exit 3"': unexpected failure: exit status 3`},
		{"pipe succeeds", "! pipe 'seq 3 | cat'",
			`pipe 'seq 3 \| cat': unexpected success`},
		{"pipe does not parse", "pipe 'seq 3 |'",
			`pipe 'seq 3 \|': spec:1:7: `},
		{"pipe of an unknown program", "pipe 'seq 3 | nosuchprogram'",
			`unexpected failure: exit status 127`},
		{"pipe background without a name", "pipe 'seq 3' &",
			`needs a name`},
		{"status mismatch", "! pipe 'sh -c \"exit 3\"'\nstatus 4",
			`status: want 4, pipe 'sh -c "exit 3"' ended with exit status 3`},
		{"status sig mismatch", "! pipe 'sh -c \"kill -TERM \\$\\$\"'\nstatus sig HUP",
			`status: want sig HUP, .* ended with exit status 143 \(SIGTERM\)`},
		{"status negated", "! pipe 'sh -c \"exit 3\"'\n! status 3",
			`status: want not 3`},
		{"status before any pipe", "status 0",
			`status: no pipe or await has ended yet`},
		{"signal to an unknown name", "signal -HUP nosuch",
			`signal nosuch: no background command of that name`},
		{"signal by an unknown name", "pipe 'sleep 100' &s&\nsignal -NOSUCH s",
			`unknown signal SIGNOSUCH`},
		{"signal -group to exec's command", "exec sleep 100 &s&\nsignal -group s",
			`exec leaves it in the test's own process group`},
		{"signal -pidfile without pids", "pipe 'sh -c \": > empty\"'\nsignal -pidfile empty",
			`empty: no pids in the file`},
		{"signal -pidfile of a word", "pipe 'sh -c \"echo x > bad\"'\nsignal -HUP -pidfile bad",
			`bad: "x" is not a pid`},
		{"waitout on exec's command", "exec sleep 100 &s&\nwaitout s x",
			`waitout s: exec keeps its output until wait`},
		{"waitout times out", "pipe 'sh -c \"echo hi; exec sleep 100\"' &s&\nwaitout s '^bye$'",
			`waitout s "\^bye\$": no match in its stdout: still running after [0-9.]+m?s; stdout so far:\nhi\n`},
		{"waitout sees the end", "pipe 'echo hi' &s&\nwaitout -stderr s 'bye'",
			`waitout s "bye": no match in its stderr: it ended \(exit status 0\)`},
		{"await an unknown name", "await nosuch",
			`await nosuch: no background pipe of that name`},
		{"waitfile times out", "pipe 'sh -c \"echo one > f\"'\nwaitfile -lines 2 f",
			`waitfile f: fewer than 2 lines after [0-9.]+m?s; it holds:\none\n`},
		{"waitfile -match times out", "pipe 'sh -c \"echo one > f\"'\nwaitfile -match '^two' f",
			`waitfile f: no line matching "\^two" after`},
		{"gone times out", "pipe 'sh -c \"echo \\$\\$ > pid; exec sleep 100\"' &s&\nwaitfile pid\ngone pid",
			`gone pid: still running after [0-9.]+m?s: [0-9]+ \(sleep 100\)`},
		{"nochildren finds what left the group", "! pipe 'sh d.sh' &d&\nwaitfile pid\nsignal -group -KILL d\nawait d\nnochildren d\n-- d.sh --\nsetsid sh -c 'echo $$ > pid; exec sleep 100' > /dev/null 2>&1 &\nwait",
			`nochildren d: still running after [0-9.]+m?s: [0-9]+ \(sleep 100\)`},
		{"pipe at the deadline", "pipe 'sh -c \"trap \\\"\\\" TERM; exec sleep 300\"'",
			`pipe .*: still running at the script's deadline: torn down \(exit status 143 \(SIGTERM\)\)`},
		{"await at the deadline", "pipe 'sleep 300' &s&\nawait s",
			`await s: still running at the script's deadline: torn down \(exit status 143 \(SIGTERM\)\)`},
		{"nochildren before await", "pipe 'sleep 300' &s&\nnochildren s",
			`nochildren s: it is still running: await it first`},
		{"signal without a name", "signal -HUP",
			`usage: signal`},
		{"pipe -f without a file", "pipe -f",
			`usage: pipe`},
		{"waitfile of no file", "waitfile nosuch",
			`waitfile nosuch: no such file after`},
		{"nochildren on exec's command", "exec sleep 100 &s&\nnochildren s",
			`s was started by exec, which does not say what it started`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mark := fmt.Sprintf("GPIPETEST_FAILURE=%d.%s", os.Getpid(), regexp.MustCompile(`[^a-z]+`).ReplaceAllString(tc.name, "_"))
			script, files, _ := strings.Cut(tc.script, "\n-- ")
			if files != "" {
				files = "-- " + files + "\n"
			}
			log := runFailing(t, "env "+mark+"\n"+script+"\n"+files)
			if !regexp.MustCompile(tc.want).MatchString(log) {
				t.Errorf("the script's log does not match %q:\n%s", tc.want, log)
			}
			// Whatever the script left running is gone at its end.
			if left := procs.WaitUntagged(mark, procs.Scaled(10*time.Second)); len(left) > 0 {
				t.Errorf("still running after the script: %v", left)
			}
		})
	}
}

// TestScriptEnd: what a script's pipelines leave running is gone at its
// end: a background pipeline never awaited, a daemon a foreground
// pipeline left (out of its group, holding its output), and one left
// by a pipeline whose name a later one took.
func TestScriptEnd(t *testing.T) {
	mark := fmt.Sprintf("GPIPETEST_END=%d", os.Getpid())
	daemon := "sh -c 'setsid sh -c \"echo \\$\\$ > $1; exec sleep 300\" & while [ ! -s $1 ]; do sleep 0.01; done' sh"
	script := "env " + mark + "\n" +
		"pipe 'sleep 300' &left&\n" +
		"pipe '" + strings.ReplaceAll(daemon, "'", "''") + " d1.pid'\n" +
		"pipe '" + strings.ReplaceAll(daemon, "'", "''") + " d2.pid' &x&\n" +
		"await x\n" +
		"pipe 'true' &x&\n" +
		"await x\n" +
		"waitfile d1.pid\nwaitfile d2.pid\n"
	log, failed := runScript(t, script)
	if failed {
		t.Fatalf("the script failed:\n%s", log)
	}
	if !strings.Contains(log, "a process it left behind held its output") {
		t.Errorf("the log does not say the daemon held the output:\n%s", log)
	}
	if left := procs.WaitUntagged(mark, procs.Scaled(10*time.Second)); len(left) > 0 {
		t.Errorf("still running after the script: %v\n%s", left, log)
	}
}

// runFailing runs script, which must fail, and returns its log.
func runFailing(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.txtar"), []byte(script), 0o666); err != nil {
		t.Fatal(err)
	}
	ft := &fakeT{deadline: time.Now().Add(procs.Scaled(3 * time.Second))}
	p := testscript.Params{Dir: dir}
	gpipetest.Setup(&p)
	func() {
		defer func() {
			if r := recover(); r != nil && r != errAbort {
				panic(r)
			}
		}()
		testscript.RunT(ft, p)
	}()
	if !ft.failed {
		t.Fatalf("the script passed:\n%s\nlog:\n%s", script, ft.log.String())
	}
	return ft.log.String()
}

// runScript runs script with the test's deadline, and returns its log and
// whether it failed.
func runScript(t *testing.T, script string) (log string, failed bool) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.txtar"), []byte(script), 0o666); err != nil {
		t.Fatal(err)
	}
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Hour)
	}
	ft := &fakeT{deadline: deadline, verbose: true}
	p := testscript.Params{Dir: dir}
	gpipetest.Setup(&p)
	func() {
		defer func() {
			if r := recover(); r != nil && r != errAbort {
				panic(r)
			}
		}()
		testscript.RunT(ft, p)
	}()
	return ft.log.String(), ft.failed
}

// fakeT is a testscript.T that records a script's failure instead of
// failing the test, with a deadline of its own (the waits' limit).
type fakeT struct {
	log      strings.Builder
	failed   bool
	deadline time.Time
	verbose  bool // the script's log even when it passes
}

var errAbort = fmt.Errorf("script failed")

func (t *fakeT) Skip(args ...any)  { panic(errAbort) }
func (t *fakeT) Fatal(args ...any) { t.Log(args...); t.FailNow() }
func (t *fakeT) Parallel()         {}
func (t *fakeT) Log(args ...any)   { fmt.Fprint(&t.log, args...) }
func (t *fakeT) FailNow()          { t.failed = true; panic(errAbort) }
func (t *fakeT) Verbose() bool     { return t.verbose }
func (t *fakeT) Deadline() (time.Time, bool) {
	return t.deadline, true
}
func (t *fakeT) Run(name string, f func(testscript.T)) {
	defer func() {
		if r := recover(); r != nil && r != errAbort {
			panic(r)
		}
	}()
	f(t)
}
