package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

const version = "0.1.0-dev"

// Exit codes of gpipe itself; a stage's own status passes through as it is.
const (
	exitUsage    = 2   // bad flag, bad spec: nothing was started
	exitInternal = 125 // gpipe could not set the pipeline up (no pipe, say)
)

const description = `Runs SPEC, a pipeline in bash syntax, as a supervised graph of processes:
every stage is a process, every '|' an anonymous pipe, gpipe's stdin goes to
the first stage and the last stage writes gpipe's stdout.

Examples:
   gpipe 'seq 1 100 | grep 7 | wc -l'
   printf 'b\na\n' | gpipe 'sort | tr a-z A-Z'
   gpipe --status 'sh -c "exit 3" | cat'

Exit status: 0 when every stage succeeded; otherwise the status of the last
(most downstream) stage that failed for its own reason. A stage stopped by a
broken pipe (SIGPIPE, or status 141) did not fail: 'yes | head -1' exits 0.
2: bad flag or spec (nothing started); 126/127: a command is not executable
or not found (nothing started); 128+N: gpipe was stopped by signal N;
125: gpipe itself failed.`

// usageError is a bad command line: gpipe prints it with a hint, exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitStatus is the pipeline's own exit status, already reported.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run is gpipe without the process around it: everything it touches is
// passed in, and it returns the exit code instead of exiting.
func run(args, env []string, stdin, stdout, stderr *os.File, sigs <-chan os.Signal) int {
	app := newApp(env, stdin, stdout, stderr, sigs)
	if wantsHelp(args[1:]) {
		// urfave/cli would take the SPEC after --help for a help topic.
		args = []string{args[0], "--help"}
	}
	err := app.Run(args)
	code := exitCode(err)
	var st exitStatus
	if err != nil && !errors.As(err, &st) {
		fmt.Fprintf(stderr, "gpipe: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "usage: gpipe [flags] SPEC (see gpipe --help)")
		}
	}
	return code
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
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return int(st)
	case errors.As(err, &ue), errors.As(err, &pe), errors.As(err, &be):
		return exitUsage
	case errors.As(err, &le):
		return le.Code
	}
	return exitInternal
}

func newApp(env []string, stdin, stdout, stderr *os.File, sigs <-chan os.Signal) *cli.App {
	return &cli.App{
		Name:            "gpipe",
		Usage:           "run a shell-style pipeline as a supervised process graph",
		UsageText:       "gpipe [flags] SPEC",
		Description:     description,
		Version:         version,
		HideHelpCommand: true,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "status", Usage: "print every stage's exit status to stderr after the run, like bash's PIPESTATUS"},
			&cli.DurationFlag{Name: "grace", Value: 3 * time.Second, Usage: "after a teardown signal, how long stages get before SIGKILL"},
			&cli.BoolFlag{Name: "explain", Usage: "print the plan (every stage, every edge, its transport and why) and run nothing"},
			&cli.StringFlag{Name: "transport", Value: "auto", Usage: "transport of every edge: auto, pipe, fifo, mem or shm (mem and shm need builtins at both ends; shm implies --isolate)"},
			&cli.BoolFlag{Name: "isolate", Usage: "run every builtin in a process of its own, joined to other builtins by shm rings, instead of inside gpipe"},
			&cli.StringFlag{Name: "ring-size", Value: "512KiB", Usage: "data size of each ring, mem or shm (rounded up to a power of two, 4KiB to 1GiB)"},
		},
		// gpipe decides its exit code and prints its errors itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error()}
		},
		Action: func(c *cli.Context) error {
			switch c.NArg() {
			case 0:
				return &usageError{msg: "missing SPEC: the pipeline to run"}
			case 1:
			default:
				return &usageError{msg: fmt.Sprintf("expected one SPEC, got %d arguments: quote the whole pipeline", c.NArg())}
			}
			transport, err := parseTransport(c.String("transport"))
			if err != nil {
				return err
			}
			ringSize, err := parseRingSize(c.String("ring-size"))
			if err != nil {
				return err
			}
			return runSpec(c.Args().First(), env, runOptions{
				status:    c.Bool("status"),
				explain:   c.Bool("explain"),
				grace:     c.Duration("grace"),
				transport: transport,
				isolate:   c.Bool("isolate") || transport == parser.TransportShm,
				ringSize:  ringSize,
				stdin:     stdin, stdout: stdout, stderr: stderr,
				sigs: sigs,
			})
		},
	}
}

type runOptions struct {
	status, explain       bool
	isolate               bool
	grace                 time.Duration
	transport             parser.Transport
	ringSize              int
	stdin, stdout, stderr *os.File
	sigs                  <-chan os.Signal
}

// runSpec parses, resolves and plumbs the whole pipeline before starting
// any of it, so that bad input starts nothing and creates nothing.
func runSpec(spec string, env []string, o runOptions) error {
	cfg := parser.Config{Env: expansionEnv(env), ReadDir: os.ReadDir}
	if o.transport == parser.TransportFIFO {
		// Process substitutions become named FIFOs in a private directory,
		// which plumbing creates (and removes) only if the run starts.
		dir, err := plumbing.NewFIFODir()
		if err != nil {
			return err
		}
		cfg.FIFODir = dir
	}
	g, err := parser.Parse("spec", spec, cfg)
	if err != nil {
		return err
	}
	cmds, err := stage.Resolve(g, env, builtins.Default())
	if err != nil {
		return err
	}
	stage.Place(g, cmds, o.isolate)
	infos := stage.Infos(g, cmds)
	if o.explain {
		choices, err := plumbing.Choose(g, infos, o.transport)
		if err != nil {
			return &usageError{msg: "--transport: " + err.Error()}
		}
		explain(o.stdout, g, cmds, choices)
		return nil
	}
	plan, err := plumbing.New(g, infos, plumbing.Options{Transport: o.transport, RingSize: o.ringSize})
	var te *plumbing.TransportError
	if errors.As(err, &te) {
		return &usageError{msg: "--transport: " + err.Error()}
	}
	if err != nil {
		return err
	}
	res := stage.Run(g, cmds, plan, stage.Options{
		Stdin: o.stdin, Stdout: o.stdout, Stderr: o.stderr,
		Grace:   o.grace,
		Signals: o.sigs,
		OnError: func(err error) { fmt.Fprintf(o.stderr, "gpipe: %v\n", err) },
	})
	if o.status {
		printStatus(o.stderr, res)
	}
	if code := res.ExitCode(); code != 0 {
		return exitStatus(code)
	}
	return nil
}

func printStatus(w io.Writer, res *stage.Result) {
	for _, s := range res.Statuses {
		where := ""
		if s.Stage.Parent != nil {
			where = " at " + s.Stage.Pos.String()
		}
		fmt.Fprintf(w, "gpipe: status: %s%s: %s\n", s.Stage.Name(), where, s)
	}
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

// explain prints the plan: what runs each stage, and each edge's
// transport with the reason for it.
func explain(w io.Writer, g *parser.Graph, cmds []stage.Command, choices []plumbing.Choice) {
	for i, st := range g.Stages {
		c := cmds[i]
		what := "redirections only"
		switch {
		case c.Builtin != "" && c.InProcess:
			what = "builtin " + c.Builtin
		case c.Builtin != "":
			what = "builtin " + c.Builtin + " in a process of its own"
		case c.Path != "":
			what = "program " + c.Path
		}
		words := strings.Join(st.Args, " ")
		if words == "" {
			words = "(no command)"
		}
		fmt.Fprintf(w, "stage %d: %s: %s\n", i+1, words, what)
		if st.Parent != nil {
			fmt.Fprintf(w, "  (at %s, in a process substitution of stage %d", st.Pos, st.Parent.ID+1)
			for _, in := range st.Inherits {
				fmt.Fprintf(w, "; %s shared with stage %d", in.From, in.From.Stage+1)
			}
			fmt.Fprintln(w, ")")
		}
		if c.Note != "" {
			fmt.Fprintf(w, "  (%s)\n", c.Note)
		}
	}
	for i, e := range g.Edges {
		fmt.Fprintf(w, "edge %d: %s → %s: %s (%s)\n", i+1,
			portName(g, e.From, 1), portName(g, e.To, 0), choices[i].Transport, choices[i].Reason)
	}
}

// portName is how --explain names an edge's end: the stage, and the port
// when it is not the usual one for its side.
func portName(g *parser.Graph, p parser.Port, usual int) string {
	name := g.Stages[p.Stage].Name()
	if p.FD != usual || p.Name != "" {
		name += " " + p.String()
	}
	return name
}
