package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/report"
	"github.com/gpipe/gpipe/stage"
)

const version = "0.1.0-dev"

// Exit codes of gpipe itself; a stage's own status passes through as it is.
const (
	exitUsage    = 2                     // bad flag, bad spec: nothing was started
	exitInternal = stage.ExitCannotStart // gpipe could not set the pipeline up (no pipe, say)
)

const description = `Runs SPEC, a pipeline in bash syntax, as a supervised graph of processes:
every stage is a process, every '|' an anonymous pipe, gpipe's stdin goes to
the first stage and the last stage writes gpipe's stdout.

With -f, runs a pipeline file instead: one graph of several pipelines, with
named stages and parameters given as NAME=VALUE after the file's name
(docs/pipeline-files.md). 'gpipe -f FILE --help' lists them; 'gpipe check
FILE…' validates files and runs nothing.

Examples:
   gpipe 'seq 1 100 | grep 7 | wc -l'
   printf 'b\na\n' | gpipe 'sort | tr a-z A-Z'
   gpipe --status 'sh -c "exit 3" | cat'
   gpipe -f examples/wordfreq.gp input=README.md top=5

Exit status: 0 when every stage succeeded; otherwise the status of the last
(most downstream) stage that failed for its own reason. A stage stopped by a
broken pipe (SIGPIPE, or status 141) did not fail: 'yes | head -1' exits 0.
2: bad flag, spec or file (nothing started); 126/127: a command is not executable
or not found (nothing started); 128+N: gpipe was stopped by signal N;
125: gpipe itself failed.`

// usageError is a bad command line: gpipe prints it with a hint, exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitStatus is the pipeline's own exit status, already reported.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// app is one gpipe invocation: everything it touches is passed in.
type app struct {
	env                   []string
	stdin, stdout, stderr *os.File
	sigs                  <-chan os.Signal

	// sources holds the text of every pipeline file read, by the name
	// its errors carry, for the caret line under an error's place.
	sources map[string]string

	// tornDownBy is the signal that tore the pipeline down, if one did:
	// gpipe then dies by it, once the stages are gone.
	tornDownBy os.Signal
}

// run is gpipe without the process around it: everything it touches is
// passed in, and it returns the exit code instead of exiting.
func run(args, env []string, stdin, stdout, stderr *os.File, sigs <-chan os.Signal) int {
	code, _ := runSignalled(args, env, stdin, stdout, stderr, sigs)
	return code
}

// runSignalled is run, and also returns the signal that tore the pipeline
// down, if one did.
func runSignalled(args, env []string, stdin, stdout, stderr *os.File, sigs <-chan os.Signal) (int, os.Signal) {
	a := &app{env: env, stdin: stdin, stdout: stdout, stderr: stderr, sigs: sigs, sources: map[string]string{}}
	var err error
	switch file, ok := fileArg(args[1:]); {
	case plainSpec(args[1:]):
		// "gpipe SPEC", the common case: what urfave/cli would make of
		// it, without building and running the application, which took
		// half a millisecond of the 5 ms that three /bin/true take.
		err = a.runSpec(args[1], defaultSettings())
	case ok && wantsHelp(args[1:]):
		err = a.fileHelp(file)
	case wantsHelp(args[1:]):
		// urfave/cli would take the SPEC after --help for a help topic.
		err = a.newApp().Run([]string{args[0], "--help"})
	default:
		err = a.newApp().Run(args)
	}
	code := exitCode(err)
	var st exitStatus
	if err != nil && !errors.As(err, &st) {
		fmt.Fprintf(stderr, "gpipe: %v\n", err)
		a.caret(err)
		var ue *usageError
		if errors.As(err, &ue) {
			if isCheck(args[1:]) {
				fmt.Fprintln(stderr, "usage: gpipe [flags] check FILE… [NAME=VALUE…] (see gpipe check --help)")
			} else if _, ok := fileArg(args[1:]); ok {
				fmt.Fprintln(stderr, "usage: gpipe [flags] -f FILE [NAME=VALUE…] (see gpipe -f FILE --help)")
			} else {
				fmt.Fprintln(stderr, "usage: gpipe [flags] SPEC (see gpipe --help)")
			}
		}
	}
	return code, a.tornDownBy
}

// isCheck reports whether the command line is "gpipe [flags] check …".
func isCheck(args []string) bool {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case takesValue(a):
			i++
		case !strings.HasPrefix(a, "-"):
			return a == "check"
		}
	}
	return false
}

// wantsHelp reports whether the command line asks for help anywhere among
// its flags, SPEC or not.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// exitCode maps every error gpipe can end with to its process exit code,
// in one place.
func exitCode(err error) int {
	var (
		st exitStatus
		ue *usageError
		pe *parser.Error
		le *stage.LookupError
		be *stage.BuiltinError
		se *report.SVGError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se):
		return se.Code
	case errors.As(err, &st):
		return int(st)
	case errors.As(err, &le):
		return le.Code
	case errors.As(err, &ue), errors.As(err, &pe), errors.As(err, &be):
		return exitUsage
	}
	return exitInternal
}

func (a *app) newApp() *cli.App {
	return &cli.App{
		Name:            "gpipe",
		Usage:           "run a shell-style pipeline as a supervised process graph",
		UsageText:       "gpipe [flags] SPEC\n   gpipe [flags] -f FILE [NAME=VALUE…]\n   gpipe check FILE… [NAME=VALUE…]\n   gpipe help [BUILTIN]",
		Description:     description,
		Version:         version,
		HideHelpCommand: true,
		Reader:          a.stdin,
		Writer:          a.stdout,
		ErrWriter:       a.stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "run the pipeline file `FILE` (- reads it from stdin); the arguments after it are its parameters, NAME=VALUE"},
			&cli.BoolFlag{Name: "status", Usage: "print every stage's exit status to stderr after the run, like bash's PIPESTATUS"},
			&cli.BoolFlag{Name: "progress", Usage: "show every edge's bytes so far and rate on stderr: redrawn in place on a terminal (with a bar and ETA where the total is known), a plain line per edge every 2s and at the end otherwise"},
			&cli.DurationFlag{Name: "grace", Value: defaultGrace, Usage: "after a teardown signal, how long stages get before SIGKILL"},
			&cli.BoolFlag{Name: "explain", Usage: "print the plan (every stage, every edge, its transport and why) and run nothing"},
			&cli.BoolFlag{Name: "dot", Usage: "print the plan as a Graphviz DOT graph and run nothing (with --stats: run, then print it with each edge's bytes)"},
			&cli.BoolFlag{Name: "svg", Usage: "print the plan as an SVG picture, drawn by Graphviz's dot, and run nothing (with --stats: run first, as --dot)"},
			&cli.GenericFlag{Name: "stats", Value: new(statsFormat), Usage: "after the run, print per stage (status, times, CPU, memory) and per edge (bytes, rate, waits) to stderr: --stats for a table, --stats=json for JSON (docs/stats.schema.json)"},
			&cli.StringFlag{Name: "transport", Value: defaultTransport, Usage: "transport of every edge: auto, pipe, fifo, mem or shm (mem and shm need builtins at both ends; shm implies --isolate)"},
			&cli.BoolFlag{Name: "fail-fast", Value: defaultFailFast, Usage: "when a stage cannot start (127, 126, or 125 for gpipe's resources), start nothing more and kill what started; --fail-fast=false runs the rest, as bash does"},
			&cli.BoolFlag{Name: "stop-early", Usage: "send SIGPIPE to a stage as soon as nothing reads its output, not at its next write as bash does (sh -c 'echo a; sleep 30; echo b' | head -1 ends at once)"},
			&cli.BoolFlag{Name: "label-stderr", Usage: "prefix every line a stage writes to stderr with the stage's number and name, \"[2 grep] \", whole lines only: gpipe relays each stage's stderr through a pipe of its own"},
			&cli.BoolFlag{Name: "isolate", Usage: "run every builtin in a process of its own, joined to other builtins by shm rings, instead of inside gpipe"},
			&cli.StringFlag{Name: "ring-size", Value: defaultRingSize, Usage: "data size of each ring, mem or shm (rounded up to a power of two, 4KiB to 1GiB)"},
			&cli.StringFlag{Name: "buffer", Value: "64MiB", Usage: "memory each output of a tee that gpipe adds (a pipeline file's stage read in several places) holds before it spills to a temporary file"},
			// urfave/cli adds --help itself only when no command is
			// named help; gpipe's help command is about the builtins.
			cli.HelpFlag,
		},
		Commands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate pipeline files as a run would, and run nothing",
			ArgsUsage: "FILE… [NAME=VALUE…]",
			Description: `Checks each FILE as 'gpipe -f FILE' would before it starts anything:
syntax, parameters, named stages and edges, cycles, every command (found on
PATH, or a builtin taking its arguments) and every edge's transport. A
required parameter that no NAME=VALUE gives is checked with the value <NAME>.
Prints FILE: ok for each good file; exits 2 at the first bad one.`,
			Action: func(c *cli.Context) error { return a.check(c) },
			OnUsageError: func(_ *cli.Context, err error, _ bool) error {
				return &usageError{msg: "check: " + err.Error()}
			},
		}, a.helpCommand()},
		// gpipe decides its exit code and prints its errors itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			if _, why, ok := strings.Cut(err.Error(), " for -stats: "); ok {
				// The flag package calls it a bad boolean: it is not.
				return &usageError{msg: "--stats: " + why}
			}
			return &usageError{msg: err.Error()}
		},
		Action: func(c *cli.Context) error { return a.action(c) },
	}
}

// settings are what the flags say, once a pipeline file's header has
// filled in those the command line leaves unset.
type settings struct {
	status, explain bool
	progress        bool
	dot, svg        bool // the plan as a picture, instead of running (after it, with stats)
	stats           statsFormat
	isolate         bool
	failFast        bool
	stopEarly       bool
	labelStderr     bool // every stage's stderr relayed, labelled (report/labels.go)
	grace           time.Duration
	transport       parser.Transport
	ringSize        int
	buffer          string
}

// The flags' defaults that are not their type's zero value.
const (
	defaultGrace     = 3 * time.Second
	defaultTransport = "auto"
	defaultFailFast  = true
	defaultRingSize  = "512KiB"
)

// defaultSettings are the settings of a command line with no flag, as
// settingsFrom reads them from urfave/cli (TestDefaultSettings holds the
// two together).
func defaultSettings() settings {
	s := settings{failFast: defaultFailFast, grace: defaultGrace}
	s.transport, _ = parseTransport(defaultTransport)
	s.ringSize, _ = parseRingSize(defaultRingSize)
	return s
}

// plainSpec reports whether args (the command line after gpipe's name)
// is one SPEC and nothing else: no flag, no command ("check", "help"), no
// empty SPEC; "gpipe SPEC" then runs it with defaultSettings.
func plainSpec(args []string) bool {
	return len(args) == 1 && args[0] != "" && !strings.HasPrefix(args[0], "-") && args[0] != "check" && args[0] != "help"
}

func settingsFrom(c *cli.Context) (settings, error) {
	s := settings{status: c.Bool("status"), progress: c.Bool("progress"), explain: c.Bool("explain"), dot: c.Bool("dot"), svg: c.Bool("svg"), isolate: c.Bool("isolate"), failFast: c.Bool("fail-fast"), stopEarly: c.Bool("stop-early"), labelStderr: c.Bool("label-stderr"), grace: c.Duration("grace")}
	if f, ok := c.Generic("stats").(*statsFormat); ok && f != nil {
		s.stats = *f
	}
	var err error
	if s.transport, err = parseTransport(c.String("transport")); err != nil {
		return s, err
	}
	if s.ringSize, err = parseRingSize(c.String("ring-size")); err != nil {
		return s, err
	}
	if c.IsSet("buffer") { // else the tees gpipe adds keep tee's default
		if s.buffer, err = parseBuffer(c.String("buffer")); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (a *app) action(c *cli.Context) error {
	s, err := settingsFrom(c)
	if err != nil {
		return err
	}
	if c.IsSet("file") {
		return a.runFile(c, s)
	}
	switch c.NArg() {
	case 0:
		return &usageError{msg: "missing SPEC: the pipeline to run"}
	case 1:
	default:
		return &usageError{msg: fmt.Sprintf("expected one SPEC, got %d arguments: quote the whole pipeline", c.NArg())}
	}
	return a.runSpec(c.Args().First(), s)
}

// runSpec runs the pipeline spec with settings s.
func (a *app) runSpec(spec string, s settings) error {
	p, err := engine.Parse(spec)
	if err != nil {
		return err
	}
	return a.runPipeline(p, s)
}

// plan resolves and places every stage and chooses every transport,
// creating nothing: what --explain shows and gpipe check checks.
func (a *app) plan(p *engine.Pipeline, s settings) (*engine.Plan, error) {
	pl, err := p.Plan(engine.Options{
		Env:        a.env,
		Stdin:      a.stdin, // closed or /dev/null alike: end of file, nothing lost (README)
		Transport:  s.transport,
		Isolate:    s.isolate,
		RingSize:   s.ringSize,
		Buffer:     s.buffer,
		Grace:      s.grace,
		FailFast:   s.failFast,
		StopEarly:  s.stopEarly,
		Measure:    s.stats != statsOff,
		Signals:    a.sigs,
		JobControl: true, // gpipe is a command of the user's shell
	})
	var te *plumbing.TransportError
	if errors.As(err, &te) && !errors.As(err, new(*parser.Error)) {
		// --transport asked for what cannot be had: a usage error.
		return nil, &usageError{msg: "--transport: " + err.Error()}
	}
	return pl, err
}

// runPipeline plans the whole pipeline before starting any of it, so that
// bad input starts nothing and creates nothing, and reports on the run as
// the flags ask.
func (a *app) runPipeline(p *engine.Pipeline, s settings) error {
	pl, err := a.plan(p, s)
	if err != nil {
		return err
	}
	g, cmds, choices := pl.Graph(), pl.Commands(), pl.Choices()
	picture := s.dot || s.svg
	switch {
	case s.explain:
		io.WriteString(a.stdout, pl.Explain())
		return nil
	case s.dot && s.stats == statsOff:
		report.WriteDot(a.stdout, g, cmds, choices, nil)
		return nil
	case s.svg && s.stats == statsOff:
		return report.WriteSVG(a.stdout, g, cmds, choices, nil, pathOf(a.env))
	case s.svg:
		// Found before the run, so that a missing dot starts nothing.
		if _, err := report.LookDot(pathOf(a.env)); err != nil {
			return err
		}
	}
	o := pl.Options()
	// gpipe's own messages while the stages run: with labels, under the
	// relays' lock, so that none lands inside a stage's line.
	var msgs io.Writer = a.stderr
	var labels *report.Labeller
	if s.labelStderr {
		if labels, err = report.NewLabeller(a.stderr, g); err != nil {
			return err
		}
		msgs = labels.Out()
		o.StageStderrs = labels.Writers()
	}
	stdout := a.stdout
	if picture {
		// The picture is gpipe's output: the pipeline's own goes to
		// stderr, so that "> g.dot" holds a graph and nothing else.
		stdout = a.stderr
	}
	o.Stdout, o.Stderr = orClosed(closedAtStart(stdout, 1)), orClosed(closedAtStart(a.stderr, 2))
	o.OnError = func(err error) { fmt.Fprintf(msgs, "gpipe: %v\n", err) }
	var job *engine.Job
	var pr *report.Progress
	o.OnStart = func(j *engine.Job) {
		job = j
		if s.progress {
			pr = report.NewProgress(a.stderr, g, cmds, j.Edges(), a.stdin)
		}
	}
	o.OnLive = func(snap *stage.Snapshot) { report.PrintLive(msgs, g, job.Edges(), snap) }
	if s.progress {
		o.OnEvent = func(e stage.Event) { pr.OnEvent(e) }
	}
	if _, err := pl.Start(context.Background()); err != nil {
		if labels != nil {
			labels.CloseWriters()
			labels.Finish(report.LabelDrain)
		}
		return err
	}
	if labels != nil {
		labels.CloseWriters() // every stage holds its own copy now
	}
	if pr != nil {
		go pr.Run(job.Snapshot)
	}
	res := job.Wait()
	if pr != nil {
		// Stopped before --status prints, so that its lines come after.
		pr.Finish(job.Snapshot())
	}
	if labels != nil {
		labels.Finish(report.LabelDrain)
	}
	if s.status {
		report.PrintStatus(a.stderr, res.Raw)
	}
	if s.stats != statsOff {
		rs := report.CollectStats(g, cmds, choices, res.Raw, job.Snapshot(), res.Wall, selfCPU())
		var err error
		switch {
		case s.dot:
			report.WriteDot(a.stdout, g, cmds, choices, rs)
		case s.svg:
			err = report.WriteSVG(a.stdout, g, cmds, choices, rs, pathOf(a.env))
		}
		if s.stats == statsJSON {
			err = errors.Join(err, rs.WriteJSON(a.stderr))
		} else {
			err = errors.Join(err, rs.WriteText(a.stderr))
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "gpipe: --stats: %v\n", err)
		}
	}
	a.tornDownBy = res.Raw.Signal
	if res.ExitCode != 0 {
		return exitStatus(res.ExitCode)
	}
	return nil
}

// orClosed is f, or engine.Closed for a descriptor closed at the start.
func orClosed(f *os.File) io.Writer {
	if f == nil {
		return engine.Closed
	}
	return f
}

// expansionEnv is the environment words are expanded in: gpipe's own, with
// PWD set to the working directory, which globs are relative to.
func expansionEnv(env []string) []string {
	wd, err := os.Getwd()
	if err != nil {
		return env
	}
	return append(env[:len(env):len(env)], "PWD="+wd)
}

func parseTransport(s string) (parser.Transport, error) {
	for _, t := range []parser.Transport{parser.TransportAuto, parser.TransportPipe, parser.TransportFIFO, parser.TransportMem, parser.TransportShm} {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, &usageError{msg: fmt.Sprintf("--transport: unknown transport %q (want auto, pipe, fifo, mem or shm)", s)}
}

func parseRingSize(s string) (int, error) {
	n, err := builtins.ParseSize(s)
	if err != nil || n < plumbing.MinRingSize || n > plumbing.MaxRingSize {
		return 0, &usageError{msg: fmt.Sprintf("--ring-size: %q is not a size from 4KiB to 1GiB", s)}
	}
	return int(n), nil
}
