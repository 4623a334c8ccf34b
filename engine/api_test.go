package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
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
