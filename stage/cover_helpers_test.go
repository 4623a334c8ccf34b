package stage

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// deadlineScaleEnv scales every deadline of these tests, as it does
// cmd/gpipe's: GPIPE_TEST_DEADLINE_SCALE=3 gives each three times as long
// on a slow or loaded machine. A deadline only catches a hang.
const deadlineScaleEnv = "GPIPE_TEST_DEADLINE_SCALE"

// scaled is the deadline d, scaled by the knob (a positive number; unset
// or anything else means 1).
func scaled(d time.Duration) time.Duration {
	f, err := strconv.ParseFloat(os.Getenv(deadlineScaleEnv), 64)
	if err != nil || f <= 0 {
		f = 1
	}
	return time.Duration(float64(d) * f)
}

// waitUntil polls cond until it holds, failing the test with what if it
// does not within the scaled deadline d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(scaled(d)); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, scaled(d))
		}
	}
}

// setup is how a spec is prepared and run by the tests of this file's
// siblings: with Place's isolate and ttyStdin, and plumbing's options.
type setup struct {
	reg       map[string]*builtins.Builtin // nil: builtins.Default()
	isolate   bool
	ttyStdin  bool // Place as if gpipe's stdin were a terminal
	transport parser.Transport
	fifoDir   bool // process substitutions become named FIFOs (--transport fifo)
	stdin     *os.File
	opts      Options
	limit     time.Duration // 0: 20s
}

// run is one finished run: its result and what its stdout and stderr got.
type run struct {
	*Result
	stdout, stderr string
}

// prepareWith parses, resolves, places and plumbs spec as su says.
func prepareWith(t *testing.T, spec string, su setup) (*parser.Graph, []Command, *plumbing.Plan) {
	t.Helper()
	g, err := parser.Parse("spec", spec, parser.Config{Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	if su.fifoDir {
		dir, err := plumbing.NewFIFODir()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		plumbing.NameFIFOs(g, dir, true)
		su.transport = parser.TransportFIFO // as the engine pairs them
	}
	reg := su.reg
	if reg == nil {
		reg = builtins.Default()
	}
	cmds, err := Resolve(g, os.Environ(), reg)
	if err != nil {
		t.Fatal(err)
	}
	Place(g, cmds, su.isolate, su.ttyStdin)
	plan, err := plumbing.New(g, Infos(g, cmds), plumbing.Options{Transport: su.transport})
	if err != nil {
		t.Fatal(err)
	}
	return g, cmds, plan
}

// runSetup runs spec as su says, with stdout and stderr going to files
// it reads back, and stdin /dev/null unless su gives one; it fails the
// test if the run does not end within the (scaled) limit.
func runSetup(t *testing.T, spec string, su setup) run {
	t.Helper()
	g, cmds, plan := prepareWith(t, spec, su)
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	opts := su.opts
	opts.Stdin, opts.Stdout, opts.Stderr = su.stdin, out, errf
	if opts.Stdin == nil {
		null, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		opts.Stdin = null
	}
	if opts.Grace == 0 {
		opts.Grace = time.Second
	}
	limit := su.limit
	if limit == 0 {
		limit = 20 * time.Second
	}
	done := make(chan *Result, 1)
	go func() { done <- Run(g, cmds, plan, opts) }()
	var r *Result
	select {
	case r = <-done:
	case <-time.After(scaled(limit)):
		t.Fatalf("%q did not end within %v", spec, scaled(limit))
	}
	stdout, _ := os.ReadFile(out.Name())
	stderr, _ := os.ReadFile(errf.Name())
	return run{Result: r, stdout: string(stdout), stderr: string(stderr)}
}

// codes lists the exit codes of a run's stages.
func codes(r *Result) []int {
	var c []int
	for _, s := range r.Statuses {
		c = append(c, s.Code)
	}
	return c
}

// devNull opens /dev/null for reading and writing, closed when the test
// ends.
func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitResult waits for a started pipeline's end, within the scaled
// deadline.
func waitResult(t *testing.T, p *Pipeline) *Result {
	t.Helper()
	done := make(chan *Result, 1)
	go func() { done <- p.Wait() }()
	select {
	case r := <-done:
		return r
	case <-time.After(scaled(20 * time.Second)):
		t.Fatalf("the pipeline did not end within %v", scaled(20*time.Second))
		return nil
	}
}

// mkfifo makes a named FIFO at path.
func mkfifo(path string) error { return unix.Mkfifo(path, 0o600) }
