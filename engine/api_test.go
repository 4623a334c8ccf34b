package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/internal/procs"
	"github.com/gpipe/gpipe/stage"
)

// hangLimit is how long a step may make no progress before a test calls
// it a hang: generous, and scaled by GPIPE_TEST_DEADLINE_SCALE, as every
// deadline of gpipe's tests.
func hangLimit() time.Duration {
	d := 30 * time.Second
	if n, err := strconv.Atoi(os.Getenv("GPIPE_TEST_DEADLINE_SCALE")); err == nil && n > 1 {
		d *= time.Duration(n)
	}
	return d
}

// taggedEnv is this process's environment with tag added, by which the
// test finds every process the run started.
func taggedEnv(tag string) []string {
	return append(os.Environ(), tag)
}

// waitResult waits for j, failing the test if it does not end in time.
func waitResult(t *testing.T, j *engine.Job) *engine.Result {
	t.Helper()
	done := make(chan *engine.Result, 1)
	go func() { done <- j.Wait() }()
	select {
	case res := <-done:
		return res
	case <-time.After(hangLimit()):
		t.Fatalf("the run did not end within %v", hangLimit())
	}
	return nil
}

// firstBytes is a writer that keeps the first bytes written to it, counts
// them all, and says when at least want have come.
type firstBytes struct {
	mu    sync.Mutex
	head  bytes.Buffer
	n     int64
	want  int64
	there chan struct{}
}

func (w *firstBytes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head.Len() < 1<<16 {
		w.head.Write(p[:min(len(p), 1<<16-w.head.Len())])
	}
	before := w.n
	w.n += int64(len(p))
	if before < w.want && w.n >= w.want {
		close(w.there)
	}
	return len(p), nil
}

// TestCancelMidStream: a graph of a builtin, fan-out to a program and a
// builtin, and a program reading the rest, cancelled by its context once
// bytes flow, twice at once in one process: each run ends as torn down by
// SIGTERM, every stage's status says so, the bytes that came out are the
// first of the stream, and no process of either run is left.
func TestCancelMidStream(t *testing.T) {
	p, err := engine.Parse("gen | tee >(sh -c 'exec cat > /dev/null') >(count > /dev/null) | cat")
	if err != nil {
		t.Fatal(err)
	}
	cancelledTwice(t, p, "spec", func(run int, o *engine.Options) (ready func(), check func()) {
		out := &firstBytes{want: 4 << 20, there: make(chan struct{})}
		o.Stdout = out
		ready = func() {
			select {
			case <-out.there:
			case <-time.After(hangLimit()):
				t.Errorf("run %d: no 4 MiB of output within %v", run, hangLimit())
			}
		}
		check = func() {
			var want bytes.Buffer
			for i := 1; want.Len() < out.head.Len(); i++ {
				fmt.Fprintf(&want, "%d\n", i)
			}
			if !bytes.HasPrefix(want.Bytes(), out.head.Bytes()) {
				t.Errorf("run %d: the output is not the start of gen's", run)
			}
		}
		return ready, check
	})
}

// cancelledTwice runs p twice at once, each run tagged in its environment
// and cancelled by its context once ready returns (setup makes ready and
// check for each run, and may set its options), and checks that each ends
// as torn down by SIGTERM, every stage by SIGTERM or by the broken pipe
// its reader's end caused, and that no process of either run is left.
func cancelledTwice(t *testing.T, p *engine.Pipeline, name string, setup func(run int, o *engine.Options) (ready, check func())) {
	t.Helper()
	var wg sync.WaitGroup
	for run := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := fmt.Sprintf("GPIPE_API_TEST=%d-%s-%d", os.Getpid(), name, run)
			o := engine.Options{Env: taggedEnv(tag), Grace: hangLimit()}
			ready, check := setup(run, &o)
			plan, err := p.Plan(o)
			if err != nil {
				t.Error(err)
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			j, err := plan.Start(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if ready == nil {
				// Bytes flow once the programs run: found by the tag.
				deadline := time.Now().Add(hangLimit())
				for len(procs.Tagged(tag)) < 3 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
			} else {
				ready()
			}
			cancel()
			res := waitResult(t, j)
			if res.ExitCode != 143 || res.Signal != syscall.SIGTERM {
				t.Errorf("run %d: exit %d, signal %v; want 143, SIGTERM", run, res.ExitCode, res.Signal)
			}
			for _, st := range res.Stages {
				if st.Code != 143 && st.Code != 141 {
					t.Errorf("run %d: %s: status %s; want 143 or 141", run, st.Name, st.Status)
				}
			}
			if check != nil {
				check()
			}
			if left := procs.WaitUntagged(tag, hangLimit()); len(left) > 0 {
				t.Errorf("run %d: processes left: %v", run, left)
			}
		}()
	}
	wg.Wait()
}

// TestReaderWriterStdio: stdin from an io.Reader and stdout and stderr
// into io.Writers, byte-exact, through programs and builtins.
func TestReaderWriterStdio(t *testing.T) {
	in := make([]byte, 8<<20+13)
	rand.NewChaCha8([32]byte{1}).Read(in)
	var out, errs bytes.Buffer
	res, err := engine.Run(context.Background(), "cat | tee >(sha256sum >&2) | cat", engine.Options{
		Stdin:  bytes.NewReader(in),
		Stdout: &out,
		Stderr: &errs,
	})
	if err != nil {
		t.Fatal(err, errs.String())
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Errorf("stdout: %d bytes, not the %d of stdin", out.Len(), len(in))
	}
	if want := fmt.Sprintf("%x  -\n", sha256.Sum256(in)); errs.String() != want {
		t.Errorf("stderr %q, want %q", errs.String(), want)
	}
	if len(res.Stages) != 4 {
		t.Errorf("%d stages, want 4", len(res.Stages))
	}
}

// failingWriter takes n bytes, then fails.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriterThatFails: an io.Writer that fails is a reader gone to the
// stage writing to it, which gets a broken pipe, as in a shell.
func TestWriterThatFails(t *testing.T) {
	res, err := engine.Run(context.Background(), "seq 10000000", engine.Options{Stdout: &failingWriter{n: 1000}})
	var ee *engine.ExitError
	if !errors.As(err, &ee) || res.ExitCode != 141 || res.Stages[0].Signal != syscall.SIGPIPE {
		t.Fatalf("err %v, result %+v; want a broken pipe, 141", err, res)
	}
}

// TestBadInputStartsNothing: a spec that does not parse, and a program
// that is not there, are errors naming the place or the stage, before
// anything runs.
func TestBadInputStartsNothing(t *testing.T) {
	if _, err := engine.Parse("seq 3 | | wc"); err == nil || !strings.Contains(err.Error(), "spec:1:") {
		t.Errorf("Parse of a bad spec: %v", err)
	}
	p, err := engine.Parse("seq 3 | no-such-program-here | wc")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Plan(engine.Options{})
	var le *stage.LookupError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "no-such-program-here") {
		t.Errorf("Plan with a missing program: %v", err)
	}
	if _, err := engine.ParseFile("x.gp", []byte("a: seq 3\n@b | wc\n")); err == nil || !strings.HasPrefix(err.Error(), "x.gp:2:") {
		t.Errorf("ParseFile of a file naming no such stage: %v", err)
	}
}

// TestParseFile runs a pipeline file with a parameter and a stage read
// in two places, which gpipe copies with a tee of its own.
func TestParseFile(t *testing.T) {
	src := "param N\nsrc: seq $N\npaste <(@src) <(@src | sed s/^/x/)\n"
	p, err := engine.ParseFile("two.gp", []byte(src), "N=3")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.Explain(), "added by gpipe") {
		t.Errorf("no tee of gpipe's in the plan:\n%s", plan.Explain())
	}
	var out bytes.Buffer
	plan2, _ := p.Plan(engine.Options{Stdout: &out})
	j, err := plan2.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res := waitResult(t, j); res.ExitCode != 0 || out.String() != "1\tx1\n2\tx2\n3\tx3\n" {
		t.Errorf("exit %d, output %q", res.ExitCode, out.String())
	}
	if _, err := plan2.Start(context.Background()); err == nil {
		t.Error("a plan started twice")
	}
}

// TestPlanBuffer: the tees gpipe adds get the plan's --buffer; the
// user's own tee does not.
func TestPlanBuffer(t *testing.T) {
	p, err := engine.ParseFile("b.gp", []byte("src: seq 3\ntee /dev/null < <(@src)\n@src | wc -l\n"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(engine.Options{Buffer: "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	got := plan.Explain()
	if !strings.Contains(got, ": tee --buffer 1MiB /dev/fd/63: builtin tee") || !strings.Contains(got, ": tee /dev/null: ") {
		t.Errorf("the plan:\n%s", got)
	}
}

// TestNoMain: without Main, Start refuses rather than run a pipeline
// without its guardian.
func TestNoMain(t *testing.T) {
	p, err := engine.Parse("true")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prev := engine.SetMainCalled(false)
	defer engine.SetMainCalled(prev)
	if _, err := plan.Start(context.Background()); !errors.Is(err, engine.ErrNoMain) {
		t.Errorf("Start without Main: %v, want ErrNoMain", err)
	}
}

// TestCancelledBeforeStart starts nothing.
func TestCancelledBeforeStart(t *testing.T) {
	p, _ := engine.Parse("true")
	plan, err := p.Plan(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := plan.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: %v", err)
	}
}

// TestDir runs a spec in Options.Dir, a directory that is not the test
// process's, whose own working directory stays as it is: a redirection
// in and out, a program "./s.sh", a glob, a builtin's FILE operands
// (merge reads one, tee writes one) and pwd are all in Dir. With Isolate,
// the builtins run in helper processes, which start in Dir.
func TestDir(t *testing.T) {
	for _, isolate := range []bool{false, true} {
		t.Run(fmt.Sprintf("isolate=%v", isolate), func(t *testing.T) {
			wd, err := os.Getwd()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			write := func(name, data string, mode os.FileMode) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
					t.Fatal(err)
				}
			}
			write("in.txt", "hello\n", 0o644)
			write("b.txt", "", 0o644)
			write("s.sh", "#!/bin/sh\ncat\necho script\n", 0o755)
			p, err := engine.Parse("./s.sh < in.txt | merge -n - in.txt <(echo *.txt) <(pwd) | tee out2.txt > out.txt")
			if err != nil {
				t.Fatal(err)
			}
			var out, errs bytes.Buffer
			plan, err := p.Plan(engine.Options{Dir: dir, Isolate: isolate, Stdout: &out, Stderr: &errs})
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range plan.Commands() {
				if c.Builtin != "" && c.InProcess == isolate {
					t.Errorf("stage %d (%s): in process %v, want %v", i, c.Builtin, c.InProcess, !isolate)
				}
			}
			j, err := plan.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res := waitResult(t, j); res.ExitCode != 0 {
				t.Fatalf("exit %d, stderr %q", res.ExitCode, errs.String())
			}
			if out.Len() != 0 || errs.Len() != 0 {
				t.Errorf("stdout %q, stderr %q; want none", out.String(), errs.String())
			}
			real, err := filepath.EvalSymlinks(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := "hello\nscript\nhello\nb.txt in.txt\n" + real + "\n"
			for _, name := range []string{"out.txt", "out2.txt"} {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Error(err)
				} else if string(got) != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if now, _ := os.Getwd(); now != wd {
				t.Errorf("the working directory changed to %s", now)
			}
			for _, name := range []string{"out.txt", "out2.txt"} {
				if _, err := os.Stat(name); err == nil {
					t.Errorf("%s was made in the test's own directory", name)
					os.Remove(name)
				}
			}

			// A file that is not there is named as the spec names it.
			for spec, msg := range map[string]string{
				"cat < missing.txt":     "gpipe: missing.txt: No such file or directory\n",
				"merge missing.txt":     "missing.txt: no such file or directory\n",
				"seq 3 > nodir/out.txt": "gpipe: nodir/out.txt: No such file or directory\n",
			} {
				var errs bytes.Buffer
				res, err := engine.Run(context.Background(), spec, engine.Options{Dir: dir, Isolate: isolate, Stderr: &errs})
				if err == nil || res.ExitCode != 1 {
					t.Errorf("%s: %v, %+v; want exit 1", spec, err, res)
				}
				if !strings.HasSuffix(errs.String(), msg) || strings.Contains(errs.String(), dir) {
					t.Errorf("%s: stderr %q, want it to end in %q", spec, errs.String(), msg)
				}
			}
			// What the plan looks at is in Dir too: split's OUTPUT that
			// is an existing file means coreutils' split, and a builtin
			// whose redirection opens a FIFO runs in a process of its own.
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			for spec, check := range map[string]func(stage.Command) bool{
				"seq 3 | split in.txt": func(c stage.Command) bool { return c.Builtin == "" },
				"count < fifo":         func(c stage.Command) bool { return c.Builtin == "count" && !c.InProcess },
			} {
				p, err := engine.Parse(spec)
				if err != nil {
					t.Fatal(err)
				}
				plan, err := p.Plan(engine.Options{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				if cmds := plan.Commands(); !check(cmds[len(cmds)-1]) {
					t.Errorf("%s: the plan:\n%s", spec, plan.Explain())
				}
			}
			p, err = engine.Parse("./nope.sh")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Plan(engine.Options{Dir: dir}); err == nil || err.Error() != "./nope.sh: No such file or directory" {
				t.Errorf("Plan of a missing ./nope.sh: %v", err)
			}
		})
	}
}

// TestDirRelative: a relative Dir is relative to the process's working
// directory when planned; one that is no directory fails the plan.
func TestDirRelative(t *testing.T) {
	p, err := engine.Parse("pwd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(engine.Options{Dir: "no-such-dir"}); err == nil || !strings.Contains(err.Error(), "no-such-dir") {
		t.Errorf("a plan in a directory that is not there: %v", err)
	}
	if _, err := p.Plan(engine.Options{Dir: "api_test.go"}); err == nil {
		t.Error("a plan in a file")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	up, err := filepath.EvalSymlinks(filepath.Dir(wd))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := engine.Run(context.Background(), "pwd", engine.Options{Dir: "..", Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != up+"\n" {
		t.Errorf("pwd in ..: %q, want %q", out.String(), up+"\n")
	}
}

// TestJobGroup: a run's processes are in the group Job.Group names, not
// this process's; a run of builtins inside this process has none.
func TestJobGroup(t *testing.T) {
	p, err := engine.Parse("sleep 30 | command cat")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(engine.Options{Grace: hangLimit()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j, err := plan.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := j.Group()
	if g == 0 || g == syscall.Getpgrp() {
		t.Errorf("Group() = %d, this process's group %d", g, syscall.Getpgrp())
	}
	n := 0
	for _, st := range j.Snapshot().Stages {
		if st.Pid == 0 {
			continue
		}
		n++
		if pg, err := syscall.Getpgid(st.Pid); err != nil || pg != g {
			t.Errorf("%s: pid %d in group %d (%v), want %d", st.Stage.Name(), st.Pid, pg, err, g)
		}
	}
	if n != 2 {
		t.Errorf("%d processes in the snapshot, want 2", n)
	}
	cancel()
	if res := waitResult(t, j); res.Signal != syscall.SIGTERM {
		t.Errorf("exit %d, signal %v; want SIGTERM", res.ExitCode, res.Signal)
	}

	p, err = engine.Parse("gen -n 3 | count")
	if err != nil {
		t.Fatal(err)
	}
	plan, err = p.Plan(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	j, err = plan.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := j.Group(); g != 0 {
		t.Errorf("builtins inside this process: Group() = %d, want 0", g)
	}
	waitResult(t, j)
}

// TestResultEdges: the result carries every edge's transport and, for a
// ring, the bytes its reader consumed, which are exactly what went
// through; a pipe between programs is not counted.
func TestResultEdges(t *testing.T) {
	var lines, sevens bytes.Buffer
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&lines, "%d\n", i)
		if strings.Contains(strconv.Itoa(i), "7") {
			fmt.Fprintf(&sevens, "%d\n", i)
		}
	}
	var out bytes.Buffer
	res, err := engine.Run(context.Background(), "gen -n 1000 | filter 7 | count | sed -n p", engine.Options{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d\n", strings.Count(sevens.String(), "\n")); out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	want := []engine.EdgeStatus{
		{From: "stage 1 (gen) stdout", To: "stage 2 (filter) stdin", Transport: "mem", Counted: true, Bytes: uint64(lines.Len()), Written: uint64(lines.Len())},
		{From: "stage 2 (filter) stdout", To: "stage 3 (count) stdin", Transport: "mem", Counted: true, Bytes: uint64(sevens.Len()), Written: uint64(sevens.Len())},
		{From: "stage 3 (count) stdout", To: "stage 4 (sed) stdin", Transport: "pipe"},
	}
	if !reflect.DeepEqual(res.Edges, want) {
		t.Errorf("edges\n%+v\nwant\n%+v", res.Edges, want)
	}
}

// TestWaitDelay: a process a stage left behind that holds the output
// (a daemon, out of the pipeline's group) does not hold Wait past
// Options.WaitDelay; the bytes written before are there, and the result
// says the copy was cut short.
func TestWaitDelay(t *testing.T) {
	tag := fmt.Sprintf("GPIPE_API_TEST=%d-waitdelay", os.Getpid())
	defer func() {
		for _, pid := range procs.Tagged(tag) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	// The daemon has left the group (setsid) before the stage ends: the
	// end of the run kills the group, which it would otherwise be in.
	spec := `sh -c 'setsid sh -c "echo \$\$ > daemon.pid; exec sleep 300" & while [ ! -s daemon.pid ]; do sleep 0.01; done; echo hi'`
	var out bytes.Buffer
	res, err := engine.Run(context.Background(), spec,
		engine.Options{Env: taggedEnv(tag), Dir: t.TempDir(), Stdout: &out, WaitDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "hi\n" || !res.OutputHeld {
		t.Errorf("output %q, held %v; want \"hi\\n\", true", out.String(), res.OutputHeld)
	}
	// Without a leftover, the copy ends by itself.
	out.Reset()
	res, err = engine.Run(context.Background(), "echo hi", engine.Options{Stdout: &out, WaitDelay: hangLimit()})
	if err != nil || out.String() != "hi\n" || res.OutputHeld {
		t.Errorf("echo hi: %v, output %q, held %v", err, out.String(), res.OutputHeld)
	}
}

// TestStderrTail: with Options.StderrTail, each stage's last bytes of
// standard error are in its status, the error of a failed run names the
// stage and quotes its last line, and everything still reaches Stderr.
func TestStderrTail(t *testing.T) {
	var errs bytes.Buffer
	res, err := engine.Run(context.Background(),
		`sh -c 'echo starting >&2; seq 3' | sh -c 'cat > /dev/null; echo "first"; echo "bad input at line 3" >&2; exit 3' | cat`,
		engine.Options{Stderr: &errs, StderrTail: 12})
	var ee *engine.ExitError
	if !errors.As(err, &ee) || ee.Stage == nil {
		t.Fatalf("err %v, want an *ExitError naming a stage", err)
	}
	if want := "gpipe: stage 2 (sh): exit status 3: t at line 3"; err.Error() != want {
		t.Errorf("error %q, want %q", err.Error(), want)
	}
	// The last 12 bytes are one line cut short, kept as the only one.
	if got := res.Stages[1].StderrTail; got != "t at line 3\n" {
		t.Errorf("stage 2's tail %q, want the last 12 bytes", got)
	}
	if got := res.Stages[0].StderrTail; got != "starting\n" {
		t.Errorf("stage 1's tail %q", got)
	}
	if got := errs.String(); !strings.Contains(got, "starting\n") || !strings.Contains(got, "bad input at line 3\n") {
		t.Errorf("stderr %q lacks a stage's lines", got)
	}
	// Whole lines: a line cut short at the start is left out.
	res, _ = engine.Run(context.Background(), `sh -c 'echo one-long-line >&2; echo two >&2; echo three >&2; exit 1'`,
		engine.Options{StderrTail: 12})
	if got := res.Stages[0].StderrTail; got != "two\nthree\n" {
		t.Errorf("tail %q, want %q", got, "two\nthree\n")
	}
	// Without it, no tail and the error as before.
	res, err = engine.Run(context.Background(), `sh -c 'echo oops >&2; exit 3'`, engine.Options{})
	if err == nil || err.Error() != "gpipe: stage 1 (sh): exit status 3" || res.Stages[0].StderrTail != "" {
		t.Errorf("without StderrTail: %v, tail %q", err, res.Stages[0].StderrTail)
	}
}
