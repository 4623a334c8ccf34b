package stage

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// runSpec parses spec, resolves and plumbs it, and runs it with the given
// signals and grace, failing the test if the run takes longer than limit.
func runSpec(t *testing.T, spec string, sigs chan os.Signal, grace, limit time.Duration) *Result {
	t.Helper()
	// No builtins: isolated ones run in a gpipe child, and this test
	// binary is not gpipe (cmd/gpipe's tests run them).
	return runWith(t, spec, nil, nil, sigs, grace, limit)
}

// runWith is runSpec with a registry of builtins, run inside this process,
// and stderr going to the given file (nil: /dev/null).
func runWith(t *testing.T, spec string, reg map[string]*builtins.Builtin, stderr *os.File, sigs chan os.Signal, grace, limit time.Duration) *Result {
	t.Helper()
	return runFull(t, spec, reg, stderr, Options{Signals: sigs, Grace: grace}, limit)
}

// runFailFast runs spec with a grace of one second, with or without
// FailFast.
func runFailFast(t *testing.T, spec string, failFast bool) *Result {
	t.Helper()
	return runFull(t, spec, nil, nil, Options{Grace: time.Second, FailFast: failFast}, 20*time.Second)
}

// prepare parses spec, resolves it with the builtins of reg (run inside
// this process) and plumbs it: a graph ready to Start.
func prepare(t *testing.T, spec string, reg map[string]*builtins.Builtin) (*parser.Graph, []Command, *plumbing.Plan) {
	t.Helper()
	g, err := parser.Parse("spec", spec, parser.Config{Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := Resolve(g, os.Environ(), reg)
	if err != nil {
		t.Fatal(err)
	}
	Place(g, cmds, false, false)
	plan, err := plumbing.New(g, Infos(g, cmds), plumbing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g, cmds, plan
}

// runFull runs spec with opts, its standard files filled in.
func runFull(t *testing.T, spec string, reg map[string]*builtins.Builtin, stderr *os.File, opts Options, limit time.Duration) *Result {
	t.Helper()
	g, cmds, plan := prepare(t, spec, reg)
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if stderr == nil {
		stderr = devnull
	}
	done := make(chan *Result, 1)
	go func() {
		if opts.Stdin == nil {
			opts.Stdin = devnull
		}
		opts.Stdout, opts.Stderr = devnull, stderr
		done <- Run(g, cmds, plan, opts)
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("%q did not end within %v", spec, limit)
		return nil
	}
}

func TestRunStatuses(t *testing.T) {
	r := runSpec(t, `sh -c "exit 3" | sh -c "cat; exit 4" | cat`, nil, time.Second, 10*time.Second)
	var got []int
	for _, s := range r.Statuses {
		got = append(got, s.Code)
	}
	if len(got) != 3 || got[0] != 3 || got[1] != 4 || got[2] != 0 {
		t.Errorf("codes = %v, want [3 4 0]", got)
	}
	if code := r.ExitCode(); code != 4 {
		t.Errorf("ExitCode() = %d, want 4", code)
	}
}

func TestRunBrokenPipe(t *testing.T) {
	r := runSpec(t, `yes | head -n 1`, nil, time.Second, 10*time.Second)
	if s := r.Statuses[0]; !s.BrokenPipe() {
		t.Errorf("yes ended with %v, want a broken pipe", s)
	}
	if code := r.ExitCode(); code != 0 {
		t.Errorf("ExitCode() = %d, want 0", code)
	}
}

func TestRunTeardownKillsAfterGrace(t *testing.T) {
	dir := t.TempDir()
	ready, ready2 := filepath.Join(dir, "ready"), filepath.Join(dir, "ready2")
	sigs := make(chan os.Signal, 1)
	go func() {
		// Signal once the shell has set its trap, or a TERM could reach
		// it first and end it before it ignores TERM; and once the
		// second stage runs, or the TERM abandons its start (seen on a
		// loaded machine).
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			_, err1 := os.Stat(ready)
			_, err2 := os.Stat(ready2)
			if err1 == nil && err2 == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		sigs <- syscall.SIGTERM
	}()
	start := time.Now()
	r := runSpec(t, `sh -c "trap '' TERM; : > `+ready+`; sleep 30" | sh -c ": > `+ready2+`; exec sleep 30"`, sigs, 200*time.Millisecond, 10*time.Second)
	if code := r.ExitCode(); code != 143 {
		t.Errorf("ExitCode() = %d, want 143", code)
	}
	// sleep dies of SIGTERM at once; the shell ignoring it dies of SIGKILL
	// after the grace period.
	if s := r.Statuses[1]; s.Signal != syscall.SIGTERM {
		t.Errorf("sleep ended with %v, want SIGTERM", s)
	}
	if s := r.Statuses[0]; s.Signal != syscall.SIGKILL {
		t.Errorf("sh ignoring TERM ended with %v, want SIGKILL", s)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("teardown took %v, less than the grace period", d)
	}
}

func TestRunRedirectFailureFailsOnlyThatStage(t *testing.T) {
	r := runSpec(t, `echo hi | cat < /nonexistent/in`, nil, time.Second, 10*time.Second)
	s := r.Statuses[1]
	if s.Started || s.Code != 1 || s.Err == nil || s.Err.Error() != "/nonexistent/in: No such file or directory" {
		t.Errorf("cat: %+v, want not started, code 1, bash's error", s)
	}
	if !r.Statuses[0].Started {
		t.Errorf("echo did not start")
	}
}

// withBoom is the default registry and "boom", a builtin that passes its
// first block on and then panics: a bug in a builtin.
func withBoom() map[string]*builtins.Builtin {
	reg := registry()
	reg["boom"] = &builtins.Builtin{Name: "boom", Parse: func([]string) (builtins.Run, error) {
		return func(in plumbing.Source, out plumbing.Sink, _ builtins.Files) error {
			buf, _ := in.Peek(1)
			plumbing.Write(out, buf)
			panic("boom went the builtin")
		}, nil
	}}
	return reg
}

// TestInProcessPanic: a builtin that panics inside gpipe is that stage's
// failure, status ExitPanic with a message on its stderr; its reader sees
// its input broken off; gpipe goes on and exits with the panicked stage's
// status.
func TestInProcessPanic(t *testing.T) {
	errf, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	r := runWith(t, "gen -n 100 | boom | count", withBoom(), errf, nil, time.Second, 10*time.Second)
	if s := r.Statuses[1]; s.Code != ExitPanic {
		t.Errorf("boom: %v, want %d", s, ExitPanic)
	}
	if s := r.Statuses[2]; !s.InputBroken {
		t.Errorf("count after boom: %v, want its input broken off", s)
	}
	if code := r.ExitCode(); code != ExitPanic {
		t.Errorf("ExitCode() = %d, want %d", code, ExitPanic)
	}
	msg, _ := os.ReadFile(errf.Name())
	if !strings.Contains(string(msg), "gpipe: stage 2 (boom): internal error: boom went the builtin\n") {
		t.Errorf("stderr = %q, want the panic named", msg)
	}
}

// TestInProcessTeardown: a teardown signal stops builtins running inside
// gpipe; each ends as a program killed by the signal.
// The signal is sent once data flows through them to the last stage, a
// process, which the signal reaches too.
func TestInProcessTeardown(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	marker := filepath.Join(t.TempDir(), "flowing")
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(marker); err == nil {
				break
			}
		}
		sigs <- syscall.SIGTERM
	}()
	r := runWith(t, "gen | cat | sh -c 'read x; touch "+marker+"; exec cat > /dev/null'", registry(), nil, sigs, time.Second, 10*time.Second)
	for i, s := range r.Statuses {
		if s.Signal != syscall.SIGTERM || s.Code != 143 {
			t.Errorf("stage %d: %v, want 143 (SIGTERM)", i+1, s)
		}
	}
	if code := r.ExitCode(); code != 143 {
		t.Errorf("ExitCode() = %d, want 143", code)
	}
}

// TestInProcessTeardownIsNoEnd: builtins inside gpipe torn down while
// they wait for gpipe's stdin, which never ends, each read as torn down,
// however the stops fall: a builtin stopped closes its output, and the
// next one must not take that for the end of its input and exit 0 (which
// it did, now and then, when the stops came upstream first).
func TestInProcessTeardownIsNoEnd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	runs := 100
	if testing.Short() {
		runs = 20
	}
	for range runs {
		g, cmds, plan := prepare(t, "cat | cat | cat | count", registry())
		p := Start(g, cmds, plan, Options{Stdin: r, Stdout: devnull, Stderr: devnull, Grace: time.Second})
		p.Signal(syscall.SIGTERM)
		done := make(chan *Result, 1)
		go func() { done <- p.Wait() }()
		var res *Result
		select {
		case res = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the run did not end within 10s of SIGTERM")
		}
		for i, s := range res.Statuses {
			if s.Signal != syscall.SIGTERM || s.Code != 143 {
				t.Fatalf("stage %d: %v, want 143 (SIGTERM)", i+1, s)
			}
		}
	}
}

// TestSignalBeforeStartStartsNothing: a teardown signal that arrived
// before the start abandons it at once: no stage starts, and the run ends
// by the signal.
func TestSignalBeforeStartStartsNothing(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	dir := t.TempDir()
	r := runWith(t, "gen | cat | sh -c 'touch "+dir+"/ran' > "+dir+"/created", registry(), nil, sigs, time.Second, 10*time.Second)
	for i, s := range r.Statuses {
		if !s.Skipped || s.Started {
			t.Errorf("stage %d: %v, want never started", i+1, s)
		}
	}
	if code := r.ExitCode(); code != 143 {
		t.Errorf("ExitCode() = %d, want 143", code)
	}
	if names, _ := filepath.Glob(dir + "/*"); len(names) != 0 {
		t.Errorf("the run left %v", names)
	}
}

// TestFailFast: a stage that cannot start (a "#!" interpreter that is not
// there: 126) under FailFast starts nothing more, kills what started,
// removes the files its redirections created, and its status is the
// run's; without FailFast, the others run, as in bash.
func TestFailFast(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("#!"+dir+"/nonexistent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, failFast := range []bool{true, false} {
		first := "true" // without fail-fast it runs to its end
		if failFast {
			first = "sleep 100" // killed
		}
		spec := first + " > " + dir + "/out1 | " + bad + " | sh -c 'touch " + dir + "/ran' > " + dir + "/out3"
		r := runFailFast(t, spec, failFast)
		if code := r.ExitCode(); code != 126 {
			t.Errorf("fail-fast %v: ExitCode() = %d, want 126", failFast, code)
		}
		if want := bad + ": " + dir + "/nonexistent: bad interpreter: No such file or directory"; r.Statuses[1].Err == nil || r.Statuses[1].Err.Error() != want {
			t.Errorf("fail-fast %v: stage 2: %v, want %q", failFast, r.Statuses[1].Err, want)
		}
		_, ranErr := os.Stat(dir + "/ran")
		_, outErr := os.Stat(dir + "/out1")
		if failFast {
			if r.Statuses[0].Signal != syscall.SIGKILL || !r.Statuses[2].Skipped || ranErr == nil || outErr == nil {
				t.Errorf("fail-fast: stage 1 %v, stage 3 %v, ran: %v, out1 left: %v", r.Statuses[0], r.Statuses[2], ranErr == nil, outErr == nil)
			}
		} else if r.Statuses[2].Code != 0 || ranErr != nil || outErr != nil {
			t.Errorf("without fail-fast: stage 3 %v, ran: %v, out1: %v", r.Statuses[2], ranErr, outErr)
		}
		os.Remove(dir + "/ran")
	}
}

// TestInProcessBusy: with MeasureBusy, an in-process builtin's busy time
// is kept; without, it is zero, as is a builtin's CPU time either way.
func TestInProcessBusy(t *testing.T) {
	for _, on := range []bool{true, false} {
		r := runFull(t, "gen -n 2000000 | filter 7 | count", registry(), nil, Options{Grace: time.Second, MeasureBusy: on}, 20*time.Second)
		for i, s := range r.Statuses {
			if s.Code != 0 || (s.Busy > 0) != on || s.CPU != 0 {
				t.Errorf("MeasureBusy %v: stage %d: status %v, busy %v, CPU %v", on, i+1, s, s.Busy, s.CPU)
			}
		}
	}
}

// TestRunStderrs gives stages standard errors of their own: a nil entry
// writes Options.Stderr; a redirection of fd 2 wins over the stage's own,
// as in bash; an in-process builtin writes its message to its own.
func TestRunStderrs(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	common, first, third, fourth, fifth := file("common"), file("first"), file("third"), file("fourth"), file("fifth")
	spec := `sh -c "echo one >&2; echo x" | sh -c "cat; echo two >&2" | sh -c "echo three >&2" 2>/dev/null | sh -c "echo four >&2" | sink nodir/out`
	opts := Options{Grace: time.Second, Stderrs: []*os.File{first, nil, third, fourth, fifth}}
	runFull(t, spec, registry(), common, opts, 20*time.Second)
	for _, c := range []struct{ name, want string }{
		{"common", "two\n"},
		{"first", "one\n"},
		{"third", ""},
		{"fourth", "four\n"},
		{"fifth", "gpipe: stage 5 (sink): open nodir/out: no such file or directory\n"},
	} {
		got, err := os.ReadFile(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// TestGuardedOnceStarted: the guardian leads the pipeline's group, which
// every stage is in: it was there before any stage ran (see
// group_linux.go), so that no SIGKILL of gpipe leaves a stage's children.
func TestGuardedOnceStarted(t *testing.T) {
	g, cmds, plan := prepare(t, "sleep 30 | sleep 30", nil)
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	p := Start(g, cmds, plan, Options{Stdin: devnull, Stdout: devnull, Stderr: devnull})
	defer func() {
		p.Signal(syscall.SIGTERM)
		p.Wait()
	}()
	if p.s.guard == nil {
		t.Fatal("no guardian once Start has returned")
	}
	guard := p.s.guard.pid
	if pgid, err := syscall.Getpgid(guard); err != nil || pgid != guard {
		t.Fatalf("the guardian, %d, is in group %d (%v), not its own", guard, pgid, err)
	}
	for i, st := range p.s.res.Statuses {
		if pgid, err := syscall.Getpgid(st.Pid); err != nil || pgid != guard {
			t.Fatalf("stage %d, %d, is in group %d (%v), not the guardian's, %d", i+1, st.Pid, pgid, err, guard)
		}
	}
	if cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(guard), "cmdline")); !strings.Contains(string(cmdline), GuardianArg) {
		t.Fatalf("process %d in the pipeline's group is %q, not a guardian", guard, cmdline)
	}
}
