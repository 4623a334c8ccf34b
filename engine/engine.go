// Package engine runs pipelines written in bash syntax as supervised graphs
// of processes, from a Go program: the engine under the gpipe command.
//
// A pipeline is parsed (Parse for an inline spec, ParseFile for a pipeline
// file) or built in Go (NewGraph, with stages that may be Go functions,
// Func), planned (Pipeline.Plan: what runs each stage and how each edge
// moves bytes, creating nothing; Plan.Explain prints what gpipe --explain
// prints), then started with a context (Plan.Start) and waited for
// (Job.Wait). Standard input and output may be any io.Reader and
// io.Writer; an *os.File is handed to the stages as it is, the zero-copy
// path.
//
// A program that starts pipelines must call Main first thing in its main
// function (and in TestMain for its tests): the guardian of every
// pipeline's process group, and a builtin run in a process of its own, are
// this same program re-executed, which Main recognises and runs. Start
// fails with ErrNoMain when Main was not called, rather than run a
// pipeline without its guardian.
//
// Nothing process-wide changes unless the caller asks: no signal is caught
// (Options.Signals passes on the ones the caller catches), the terminal is
// left alone unless Options.JobControl is set, the working directory is
// never changed (a run has its own with Options.Dir), and two runs may go
// on at once in one process.
//
// The package runs on Linux only, as gpipe does.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/report"
	"github.com/gpipe/gpipe/stage"
)

// mainCalled records that Main ran and returned: this program plays its
// own guardian and helper processes.
var mainCalled atomic.Bool

// Main runs this process as one of the processes a pipeline re-executes
// its program as, when its arguments say it is one (the guardian of a
// pipeline's process group, or the helper that runs one stage), and exits
// when that is done. Otherwise it returns at once, having noted that the
// program can play them; call it before anything else in main, and in
// TestMain before m.Run:
//
//	func main() {
//		engine.Main()
//		…
//	}
func Main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case stage.ChildArg:
			os.Exit(stage.RunChild(os.Args[2:], os.Stderr, builtins.Default()))
		case stage.GuardianArg:
			os.Exit(stage.RunGuardian())
		}
	}
	mainCalled.Store(true)
}

// ErrNoMain is what Start returns when the program did not call Main.
var ErrNoMain = errors.New("gpipe: engine.Main was not called first in main (or TestMain): a pipeline's guardian and helper processes are this program re-executed")

// Transport is how an edge moves bytes: see Options.Transport.
type Transport = parser.Transport

// The transports an edge can have.
const (
	TransportAuto = parser.TransportAuto // chosen per edge
	TransportPipe = parser.TransportPipe // anonymous pipe
	TransportFIFO = parser.TransportFIFO // named FIFO in a private directory
	TransportShm  = parser.TransportShm  // shared-memory ring between processes
	TransportMem  = parser.TransportMem  // in-process ring between builtins
)

// Pipeline is a parsed pipeline: its source, checked, ready to plan.
type Pipeline struct {
	name, src string
	params    []string // a file's NAME=VALUE parameters
	file      bool

	// build makes the graph of a pipeline built in Go (Graph), afresh
	// for each plan; funcs are its Go function stages.
	build func() (*parser.Graph, error)
	funcs map[string]Func
}

// Parse parses spec, a pipeline in bash syntax ("seq 10 | grep 1"). Its
// words are expanded when it is planned, with the plan's environment; a
// syntax error is returned now, as a *parser.Error with its position.
func Parse(spec string) (*Pipeline, error) {
	p := &Pipeline{name: "spec", src: spec}
	_, err := p.graph(parser.Config{Env: os.Environ()})
	return p, err
}

// ParseFile parses a pipeline file (see docs/pipeline-files.md) read from
// src, with name used in positions ("build.gp:3:7: …") and params its
// NAME=VALUE parameters. The file's "option" lines are the gpipe command
// line's business and are not applied: set Options instead.
func ParseFile(name string, src []byte, params ...string) (*Pipeline, error) {
	p := &Pipeline{name: name, src: string(src), params: params, file: true}
	_, err := p.graph(parser.Config{Env: os.Environ()})
	return p, err
}

// graph parses the pipeline with cfg.
func (p *Pipeline) graph(cfg parser.Config) (*parser.Graph, error) {
	if p.build != nil {
		return p.build()
	}
	if !p.file {
		return parser.Parse(p.name, p.src, cfg)
	}
	f, err := parser.ParseFile(p.name, p.src, p.params, cfg)
	if err != nil {
		return nil, err
	}
	return f.Graph, nil
}

// Options say how a pipeline runs. The zero value runs it as gpipe does
// by default, with this process's environment, no standard input, its
// output and errors discarded, and no signal or terminal of its own.
type Options struct {
	// Env is the environment of the stages and of the spec's expansions
	// ($HOME, globs), as "NAME=value"; nil is this process's.
	Env []string

	// Dir is the working directory of the run: the stages start in it, and
	// the relative paths of the spec (redirections, a program "./s", a glob,
	// a builtin's FILE operands) are relative to it. "" is this process's.
	// This process's own working directory does not change, so that runs
	// in different directories may go on at once. A relative Dir is
	// relative to this process's directory when the pipeline is planned.
	// The stages' and the expansions' $PWD is Dir.
	Dir string

	// Stdin is what the pipeline's first stage reads; nil reads nothing
	// (the null device). Stdout and Stderr take the pipeline's output and
	// the stages' errors (and gpipe's messages about them, "gpipe: …");
	// nil discards them. An *os.File is handed to the stages as it is;
	// anything else is copied through a pipe by a goroutine of the run,
	// and Wait returns once the copy is done.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// Transport overrides the choice of every edge's transport
	// (--transport); TransportAuto chooses per edge.
	Transport Transport

	// Isolate runs every builtin in a process of its own (--isolate).
	Isolate bool

	// RingSize is the data capacity of each ring (--ring-size); 0 means
	// the default.
	RingSize int

	// Grace is how long the stages get after a teardown (a cancelled
	// context, a signal) before the survivors are killed (--grace); zero
	// kills at once.
	Grace time.Duration

	// FailFast abandons the whole start when a stage cannot start
	// (--fail-fast); StopEarly stops a stage once nothing reads its output
	// (--stop-early).
	FailFast, StopEarly bool

	// Signals, when not nil, delivers the signals that tear the run down
	// (SIGINT, SIGTERM, SIGHUP, SIGQUIT), as gpipe's own: the caller
	// catches them (signal.Notify) and decides which.
	Signals <-chan os.Signal

	// Funcs are stages written in Go that a spec or file may name, as a
	// builtin's name: "seq 10 | upper | wc -l" with Funcs["upper"]. A
	// name here stands for the builtin or program of that name. A
	// Graph's own functions (Graph.Func) come with it.
	Funcs map[string]Func

	// JobControl makes the run a job of this process's terminal, as the
	// gpipe command's runs are: the pipeline gets the terminal, and Ctrl-Z
	// stops it and then this process. It catches SIGTSTP while the run
	// lasts. Off, the terminal is left alone.
	JobControl bool

	// WaitDelay bounds, once every stage has ended, how long Wait goes on
	// copying the stages' output into a Stdout or Stderr that is not an
	// *os.File: a process a stage left behind (a daemon) may hold the
	// pipe open for ever. Past it, the copy is cut short and
	// Result.OutputHeld says so. Zero waits until every writer is gone,
	// as os/exec does without its WaitDelay.
	WaitDelay time.Duration

	// Buffer is the --buffer SIZE of the tees gpipe adds where a pipeline
	// file (or a Graph) reads one output in several places; "" keeps
	// tee's default.
	Buffer string

	// What follows is for a program that reports on the run as gpipe's
	// command line does (package report): it reads the plan (Plan.Graph,
	// Plan.Commands, Plan.Choices), the job's edges and snapshots, and
	// these events.

	// Measure keeps what --stats reports: the builtins' busy time and
	// every process's I/O counts (stage.Options.MeasureBusy, MeasureIO).
	Measure bool

	// StderrTail, when positive, keeps the last lines each stage writes
	// to its standard error, StderrTail bytes at most
	// (StageStatus.StderrTail); the error of a run that failed then
	// quotes its stage's last line (ExitError). Each stage gets a pipe
	// of its own, copied on to Stderr. Ignored with StageStderrs.
	StderrTail int

	// StageStderrs, when set, gives stage i its own standard error,
	// StageStderrs[i], as stage.Options.Stderrs does (--label-stderr).
	StageStderrs []*os.File

	// OnStart is called by Start once the edges exist and before any
	// stage starts: a reporter that reads the job's edges is made there.
	OnStart func(*Job)

	// OnEvent is told of every stage that starts, stops, continues or
	// ends; OnLive is given a snapshot when SIGUSR1 comes through
	// Signals; OnError is told of each stage that could not start, in
	// place of the "gpipe: …" line on Stderr. See stage.Options.
	OnEvent func(stage.Event)
	OnLive  func(*stage.Snapshot)
	OnError func(error)
}

// Closed, as Options.Stdin, Stdout or Stderr, gives the stages that
// descriptor closed, as a shell gives a command the descriptor it was
// itself started without: reading or writing it then fails.
var Closed closedFile

type closedFile struct{}

func (closedFile) Read([]byte) (int, error)  { return 0, os.ErrClosed }
func (closedFile) Write([]byte) (int, error) { return 0, os.ErrClosed }

// Plan is a pipeline planned for one run: what runs each stage and how
// each edge moves bytes. Making it creates nothing and starts nothing.
type Plan struct {
	g       *parser.Graph
	cmds    []stage.Command
	infos   []plumbing.StageInfo
	choices []plumbing.Choice
	opts    Options
	env     []string
	started atomic.Bool
}

// Plan expands the pipeline's words with opts.Env, finds what runs each
// stage (a builtin, a program on the PATH) and chooses each edge's
// transport. A program that cannot be found, a builtin's bad flag or a
// transport that cannot be had is an error naming the stage.
func (p *Pipeline) Plan(opts Options) (*Plan, error) {
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	if opts.Dir != "" {
		// Once, here: the stages' paths are joined to it from now on.
		dir, err := runDir(opts.Dir)
		if err != nil {
			return nil, err
		}
		opts.Dir = dir
		// As a shell's cd would leave it for the commands run there.
		env = withEnv(env, "PWD", dir)
	}
	cfg := parser.Config{Env: withPWD(env, opts.Dir), ReadDir: os.ReadDir}
	g, err := p.graph(cfg)
	if err != nil {
		return nil, err
	}
	// The planner's nodes: a par stage's dealer, copies and merge, and
	// the tees that copy an output read in several places (a pipeline
	// file's fan-out), which the parser leaves to it.
	if err := stage.ExpandPar(g, 0); err != nil {
		return nil, placeError(g, err)
	}
	if err := stage.AddRelays(g); err != nil {
		return nil, err
	}
	if all := opts.Transport == TransportFIFO; all || p.file {
		// Named FIFOs live in a private directory, which plumbing
		// creates (and removes) only if the run starts.
		dir, err := plumbing.NewFIFODir()
		if err != nil {
			return nil, err
		}
		plumbing.NameFIFOs(g, dir, all)
	}
	if opts.Buffer != "" {
		// How much the tees gpipe added may queue is the run's setting,
		// not the parser's: their --buffer is added here.
		for _, st := range g.Stages {
			if st.Added != "" && len(st.Args) > 0 && st.Args[0] == "tee" {
				st.Args = append([]string{"tee", "--buffer", opts.Buffer}, st.Args[1:]...)
			}
		}
	}
	reg := builtins.Default()
	funcs := map[string]Func{}
	for _, m := range []map[string]Func{opts.Funcs, p.funcs} {
		for name, f := range m {
			funcs[name] = f
			reg[name] = funcBuiltin(name, f)
		}
	}
	cmds, err := stage.ResolveIn(g, opts.Dir, env, reg)
	if err != nil {
		return nil, placeError(g, err)
	}
	// A builtin reads a terminal from a process of the pipeline's group
	// only when that group gets the terminal.
	ttyStdin := false
	if f, ok := opts.Stdin.(*os.File); ok && opts.JobControl {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		ttyStdin = err == nil
	}
	stage.Place(g, cmds, opts.Isolate || opts.Transport == TransportShm, ttyStdin)
	names := make([]string, len(g.Stages))
	for i, st := range g.Stages {
		names[i] = st.Name()
	}
	if err := inProcessFuncs(names, funcs, cmds); err != nil {
		return nil, err
	}
	infos := stage.Infos(g, cmds)
	choices, err := plumbing.Choose(g, infos, opts.Transport)
	if err != nil {
		return nil, transportError(g, err)
	}
	return &Plan{g: g, cmds: cmds, infos: infos, choices: choices, opts: opts, env: env}, nil
}

// withPWD is env with PWD set to the working directory of the run, dir,
// or this process's when dir is "": globs are relative to it.
func withPWD(env []string, dir string) []string {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return env
		}
		dir = wd
	}
	return append(env[:len(env):len(env)], "PWD="+dir)
}

// withEnv is env with name set to value: in place of its first setting,
// the others dropped, or added at the end.
func withEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	set := false
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			if !set {
				out = append(out, name+"="+value)
				set = true
			}
			continue
		}
		out = append(out, kv)
	}
	if !set {
		out = append(out, name+"="+value)
	}
	return out
}

// runDir is Options.Dir made absolute, checked to be a directory, so that
// a run in a directory that is not there fails before anything starts.
func runDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("gpipe: working directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err == nil && !fi.IsDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("gpipe: working directory %s: %w", dir, err)
	}
	return abs, nil
}

// Options are the options the plan was made with. The fields used only
// when it starts (the standard files, Grace, FailFast, StopEarly,
// Signals, Measure, StageStderrs and the hooks) may be changed until
// then, by a caller that needs the plan to set them (a labeller of the
// plan's stages); changing the others has no effect.
func (pl *Plan) Options() *Options { return &pl.opts }

// CheckLimits refuses what a run would refuse for want of descriptors or
// memory maps (RLIMIT_NOFILE, vm.max_map_count), before anything starts:
// an error of plumbing.Limits.
func (pl *Plan) CheckLimits() error {
	return plumbing.Needs(pl.g, pl.infos, pl.choices, pl.opts.RingSize).Check()
}

// Graph is the plan's graph: the user's stages, then those gpipe added.
func (pl *Plan) Graph() *parser.Graph { return pl.g }

// Commands says what runs each stage of Graph, by index.
func (pl *Plan) Commands() []stage.Command { return pl.cmds }

// Choices is each edge's transport and the reason for it, by index.
func (pl *Plan) Choices() []plumbing.Choice { return pl.choices }

// Explain is the plan as gpipe --explain prints it: each stage with what
// runs it, each edge with its transport and the reason for it.
func (pl *Plan) Explain() string {
	var b bytes.Buffer
	report.Explain(&b, pl.g, pl.cmds, pl.choices)
	return b.String()
}

// Job is a started pipeline, as a shell's job: it can be signalled, and
// waited for.
type Job struct {
	p      *stage.Pipeline
	plan   *Plan
	stdio  *stdio
	edges  *plumbing.Plan
	began  time.Time
	stop   func() bool // stops watching the context
	tails  []*tail     // each stage's stderr tail, with Options.StderrTail
	once   sync.Once
	result *Result
}

// Edges are the job's edges as plumbing made them: their meters, for a
// live report.
func (j *Job) Edges() *plumbing.Plan { return j.edges }

// Group is the process group of the run's processes: its stages, the
// helper processes of the builtins that run outside this process, and
// their children, led by the run's guardian. It is 0 when the run has no
// process (builtins inside this process only). Signalling it
// (syscall.Kill(-g, sig)) reaches them all, and nothing else; the group
// is gone once Wait has returned, and its id may be reused.
func (j *Job) Group() int { return j.p.Group() }

// Snapshot is the run as it stands: while it runs, taken between two of
// the supervisor's events; once it has ended, the final state.
func (j *Job) Snapshot() *stage.Snapshot { return j.p.Snapshot() }

// Start creates the plan's edges and starts every stage; it returns once
// all have started (or the start was abandoned, see Options.FailFast).
// Cancelling ctx tears the run down as SIGTERM would: every stage is sent
// SIGTERM, and those left after Options.Grace are killed. A Plan starts
// once.
func (pl *Plan) Start(ctx context.Context) (*Job, error) {
	if !mainCalled.Load() {
		return nil, ErrNoMain
	}
	if !pl.started.CompareAndSwap(false, true) {
		return nil, errors.New("gpipe: the plan was started already: plan the pipeline again")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := pl.opts
	std, err := newStdio(o.Stdin, o.Stdout, o.Stderr)
	if err != nil {
		return nil, err
	}
	plan, err := plumbing.New(pl.g, pl.infos, plumbing.Options{Transport: o.Transport, RingSize: o.RingSize})
	if err != nil {
		std.abandon()
		return nil, err
	}
	onError := o.OnError
	if msgs := std.stderr; onError == nil && msgs != nil {
		onError = func(err error) { fmt.Fprintf(msgs, "gpipe: %v\n", err) }
	}
	j := &Job{plan: pl, stdio: std, edges: plan}
	stderrs := o.StageStderrs
	if o.StderrTail > 0 && stderrs == nil {
		if stderrs, j.tails, err = std.tails(len(pl.g.Stages), o.StderrTail); err != nil {
			plan.Close()
			std.abandon()
			return nil, err
		}
		// The stages' copies are theirs once Start returns.
		defer func() {
			for _, f := range stderrs {
				f.Close()
			}
		}()
	}
	if o.OnStart != nil {
		o.OnStart(j)
	}
	j.began = time.Now()
	j.p = stage.Start(pl.g, pl.cmds, plan, stage.Options{
		Stdin:       std.stdin,
		Stdout:      std.stdout,
		Stderr:      std.stderr,
		Stderrs:     stderrs,
		Grace:       o.Grace,
		FailFast:    o.FailFast,
		StopEarly:   o.StopEarly,
		Signals:     o.Signals,
		JobControl:  o.JobControl,
		MeasureBusy: o.Measure,
		MeasureIO:   o.Measure || o.OnEvent != nil,
		OnError:     onError,
		OnEvent:     o.OnEvent,
		OnLive:      o.OnLive,
	})
	j.stop = context.AfterFunc(ctx, func() { j.p.Signal(syscall.SIGTERM) })
	return j, nil
}

// Signal acts on sig as the gpipe command does on receiving it: SIGINT,
// SIGTERM, SIGHUP and SIGQUIT tear the run down; any other signal is sent
// to every process of the pipeline. It does nothing once the run ended.
func (r *Job) Signal(sig syscall.Signal) { r.p.Signal(sig) }

// Wait waits until every stage has ended and the output has been copied,
// and returns how the run ended. It may be called more than once.
func (r *Job) Wait() *Result {
	r.once.Do(func() {
		res := r.p.Wait()
		wall := time.Since(r.began)
		r.stop()
		held := r.stdio.finish(r.plan.opts.WaitDelay)
		r.result = newResult(r.plan.g, res)
		for i, t := range r.tails {
			r.result.Stages[i].StderrTail = t.String()
		}
		r.result.Edges = edgeStatuses(r.plan.g, r.plan.choices, r.p.Snapshot())
		r.result.OutputHeld = held
		r.result.Raw, r.result.Wall = res, wall
	})
	return r.result
}

// Run parses spec, plans it with opts and runs it to the end: Parse,
// Pipeline.Plan, Plan.Start and Job.Wait. The error is the first step's
// that failed, or the result's (Result.Err).
func Run(ctx context.Context, spec string, opts Options) (*Result, error) {
	p, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	pl, err := p.Plan(opts)
	if err != nil {
		return nil, err
	}
	r, err := pl.Start(ctx)
	if err != nil {
		return nil, err
	}
	res := r.Wait()
	return res, res.Err()
}

// placeError puts a stage that cannot run (a command not found, a
// builtin's bad flag) at its place in a pipeline file; in a spec, the
// error names the stage already.
func placeError(g *parser.Graph, err error) error {
	if g.Name == "spec" || g.Name == "graph" {
		return err
	}
	var (
		le *stage.LookupError
		be *stage.BuiltinError
	)
	switch {
	case errors.As(err, &le):
		return &PlacedError{At: parser.Error{Name: g.Name, Pos: g.Stages[le.ID].Pos, Text: err.Error()}, Err: err}
	case errors.As(err, &be):
		return &PlacedError{At: parser.Error{Name: g.Name, Pos: g.Stages[be.ID].Pos, Text: err.Error()}, Err: err}
	}
	return err
}

// PlacedError is an error of a stage with its place in a pipeline file:
// it reads as the place ("build.gp:3:7: …"), and unwraps to the error
// (a *stage.LookupError carries the exit status, 126 or 127).
type PlacedError struct {
	At  parser.Error
	Err error
}

func (e *PlacedError) Error() string { return e.At.Error() }
func (e *PlacedError) Unwrap() error { return e.Err }

// transportError is a transport that cannot be had (shm to a program) at
// the edge of a pipeline file whose mark ("@shm") asked for it; otherwise
// the *plumbing.TransportError itself, which Options.Transport caused.
func transportError(g *parser.Graph, err error) error {
	var te *plumbing.TransportError
	if !errors.As(err, &te) {
		return err
	}
	if i := te.Edge; g.Name != "spec" && i >= 0 && g.Edges[i].Transport != parser.TransportAuto {
		return &parser.Error{Name: g.Name, Pos: g.Edges[i].Pos, Text: err.Error()}
	}
	return err
}
