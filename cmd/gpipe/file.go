package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/engine"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/report"
)

// maxFileSize bounds a pipeline file: far beyond any real one, and what
// keeps "gpipe -f /dev/zero" from reading for ever.
const maxFileSize = 1 << 20

// fileArg finds the pipeline file among gpipe's own flags (-f FILE,
// --file=FILE, …), before the first argument that is not a flag.
func fileArg(args []string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return "", false
		case takesValue(a):
			i++ // "--grace 2s": the value is no file
		case a == "-f" || a == "--file" || a == "-file":
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", false
		case strings.HasPrefix(a, "-f="), strings.HasPrefix(a, "--file="), strings.HasPrefix(a, "-file="):
			_, v, _ := strings.Cut(a, "=")
			return v, true
		case !strings.HasPrefix(a, "-"):
			return "", false
		}
	}
	return "", false
}

// takesValue reports whether a is one of gpipe's flags that take the next
// argument as their value ("--grace 2s", not "--grace=2s").
func takesValue(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "grace", "transport", "ring-size", "buffer":
		return strings.HasPrefix(a, "-")
	}
	return false
}

// readSource reads a pipeline file, "-" being stdin. Its name in errors
// is the path as given ("stdin" for "-").
// what prefixes its errors: "-f" or "check".
func (a *app) readSource(what, path string) (name, src string, err error) {
	name = path
	var r io.Reader
	if path == "-" {
		name, r = "stdin", a.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", "", &usageError{msg: what + ": " + strings.TrimPrefix(err.Error(), "open ")}
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return "", "", &usageError{msg: fmt.Sprintf("%s: %s is a directory", what, path)}
		}
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return "", "", &usageError{msg: fmt.Sprintf("%s: reading %s: %v", what, name, err)}
	}
	if len(b) > maxFileSize {
		return "", "", &usageError{msg: fmt.Sprintf("%s: %s is over %d bytes: not a pipeline file", what, name, maxFileSize)}
	}
	a.sources[name] = string(b)
	return name, string(b), nil
}

// loadFile reads and parses a pipeline file with its parameters, the
// header's options filling in what the command line leaves unset.
func (a *app) loadFile(c *cli.Context, path string, params []string, s settings) (*engine.Pipeline, settings, error) {
	name, src, err := a.readSource("-f", path)
	if err != nil {
		return nil, s, err
	}
	h, err := parser.ReadHeader(name, src, parser.Config{Env: expansionEnv(a.env)})
	if err != nil {
		return nil, s, err
	}
	if s, err = applyOptions(c, name, h.Options, s); err != nil {
		return nil, s, err
	}
	if s.explain || s.dot || s.svg {
		params = withPlaceholders(h.Params, params)
	}
	p, err := engine.ParseFile(name, []byte(src), params...)
	return p, s, err
}

// withPlaceholders adds "NAME=<NAME>" to params for every required
// parameter they do not give: the value a plan (--explain) or a check
// shows where the run would have the real one.
func withPlaceholders(declared []parser.Param, params []string) []string {
	given := map[string]bool{}
	for _, p := range params {
		k, _, _ := strings.Cut(p, "=")
		given[k] = true
	}
	out := append([]string(nil), params...)
	for _, p := range declared {
		if p.Required && !given[p.Name] {
			out = append(out, p.Name+"=<"+p.Name+">")
		}
	}
	return out
}

func (a *app) runFile(c *cli.Context, s settings) error {
	params := c.Args().Slice()
	for _, p := range params {
		if strings.HasPrefix(p, "-") {
			return &usageError{msg: fmt.Sprintf("%s after the file's parameters: gpipe's flags go before them", p)}
		}
	}
	f, s, err := a.loadFile(c, c.String("file"), params, s)
	if err != nil {
		return err
	}
	return a.runPipeline(f, s)
}

// check validates every file as a run would, and runs nothing.
func (a *app) check(c *cli.Context) error {
	var files, params []string
	for _, arg := range c.Args().Slice() {
		if k, _, ok := strings.Cut(arg, "="); ok && !strings.ContainsAny(k, "/.") {
			params = append(params, arg)
		} else {
			files = append(files, arg)
		}
	}
	if len(files) == 0 {
		return &usageError{msg: "check: missing FILE: the pipeline files to check"}
	}
	s, err := settingsFrom(c)
	if err != nil {
		return err
	}
	// Every header first: a parameter that no file declares is a mistake.
	// A file that cannot be read fails in its turn, after the good
	// files before it.
	type source struct {
		name, src string
		h         *parser.File
		err       error
	}
	var sources []source
	declared := map[string]bool{}
	allRead := true
	for _, path := range files {
		var f source
		f.name, f.src, f.err = a.readSource("check", path)
		if f.err == nil {
			f.h, f.err = parser.ReadHeader(f.name, f.src, parser.Config{Env: a.env})
		}
		if f.err != nil {
			allRead = false
		} else {
			for _, p := range f.h.Params {
				declared[p.Name] = true
			}
		}
		sources = append(sources, f)
	}
	for _, p := range params {
		k, _, _ := strings.Cut(p, "=")
		if allRead && !declared[k] {
			return &usageError{msg: fmt.Sprintf("check: unknown parameter %s: no file declares it", k)}
		}
	}
	for _, f := range sources {
		if f.err != nil {
			return f.err
		}
		name, src, h := f.name, f.src, f.h
		// Each file gets the parameters it declares; a required one that
		// no argument gives is checked as "<NAME>".
		var these []string
		for _, p := range params {
			k, _, _ := strings.Cut(p, "=")
			for _, q := range h.Params {
				if q.Name == k {
					these = append(these, p)
				}
			}
		}
		these = withPlaceholders(h.Params, these)
		fs, err := applyOptions(c, name, h.Options, s)
		if err != nil {
			return err
		}
		p, err := engine.ParseFile(name, []byte(src), these...)
		if err != nil {
			return err
		}
		pl, err := a.plan(p, fs)
		if err != nil {
			var placed *engine.PlacedError
			if errors.As(err, &placed) {
				// check's one code for a bad file: 2, even for a
				// command not found, which a run exits 127 for.
				return &placed.At
			}
			return err
		}
		// What a run would refuse for want of descriptors or memory
		// maps, check refuses too (125, as the run).
		if err := pl.CheckLimits(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(a.stdout, "%s: ok\n", name)
	}
	return nil
}

// fileHelp prints a file's usage: what it does and its parameters.
func (a *app) fileHelp(path string) error {
	name, src, err := a.readSource("-f", path)
	if err != nil {
		return err
	}
	h, err := parser.ReadHeader(name, src, parser.Config{Env: a.env})
	if err != nil {
		return err
	}
	w := a.stdout
	fmt.Fprintf(w, "usage: gpipe -f %s", path)
	for _, p := range h.Params {
		if p.Required {
			fmt.Fprintf(w, " %s=VALUE", p.Name)
		}
	}
	if len(h.Params) > 0 {
		fmt.Fprint(w, " [NAME=VALUE…]")
	}
	fmt.Fprintln(w)
	if h.Doc != "" {
		fmt.Fprintf(w, "\n%s\n", h.Doc)
	}
	if len(h.Params) > 0 {
		fmt.Fprintln(w, "\nParameters:")
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, p := range h.Params {
			def := "(required)"
			if !p.Required {
				def = "default: " + report.ShellQuote(p.Default)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Name, p.Doc, def)
		}
		tw.Flush()
	}
	if len(h.Options) > 0 {
		var opts []string
		for _, o := range h.Options {
			opts = append(opts, o.Text)
		}
		fmt.Fprintf(w, "\nOptions from the file (the command line wins): %s\n", strings.Join(opts, " "))
	}
	return nil
}

// headerFlags are the flags a file's "option" lines may set: what a
// command line would say about how to run it, not what to do instead.
var headerFlags = []string{"buffer", "fail-fast", "grace", "isolate", "label-stderr", "progress", "ring-size", "stats", "status", "stop-early", "transport"}

// applyOptions sets, from a file's "option" words, the flags the command
// line leaves unset: the command line wins.
func applyOptions(c *cli.Context, name string, opts []parser.Option, s settings) (settings, error) {
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		errf := func(format string, args ...any) error {
			return &parser.Error{Name: name, Pos: o.Pos, Text: "option " + o.Text + ": " + fmt.Sprintf(format, args...)}
		}
		if !strings.HasPrefix(o.Text, "--") {
			return s, errf("not a flag: write --NAME or --NAME=VALUE")
		}
		flag, value, hasValue := strings.Cut(strings.TrimPrefix(o.Text, "--"), "=")
		if i := sort.SearchStrings(headerFlags, flag); i == len(headerFlags) || headerFlags[i] != flag {
			return s, errf("a file's header may set --%s only", strings.Join(headerFlags, ", --"))
		}
		boolean := flag == "status" || flag == "progress" || flag == "isolate" || flag == "fail-fast" || flag == "stop-early" || flag == "label-stderr" || flag == "stats"
		if !boolean && !hasValue {
			if i+1 == len(opts) {
				return s, errf("needs a value: --%s=VALUE", flag)
			}
			i++
			value = opts[i].Text
		}
		// Every value is checked, so that whether a file is good does
		// not depend on how it is run; the command line wins.
		keep := s
		var err error
		switch flag {
		case "status", "progress", "isolate", "fail-fast", "stop-early", "label-stderr":
			on := true
			if hasValue {
				switch value {
				case "true":
				case "false":
					on = false
				default:
					return s, errf("want true or false")
				}
			}
			switch flag {
			case "status":
				s.status = on
			case "progress":
				s.progress = on
			case "isolate":
				s.isolate = on
			case "stop-early":
				s.stopEarly = on
			case "label-stderr":
				s.labelStderr = on
			default:
				s.failFast = on
			}
		case "stats":
			f := statsText
			if hasValue {
				if err := f.Set(value); err != nil {
					return s, errf("want text or json")
				}
			}
			s.stats = f
		case "grace":
			if s.grace, err = time.ParseDuration(value); err != nil || s.grace < 0 {
				return s, errf("%q is not a duration (5s, 500ms)", value)
			}
		case "transport":
			s.transport, err = parseTransport(value)
		case "ring-size":
			s.ringSize, err = parseRingSize(value)
		case "buffer":
			s.buffer, err = parseBuffer(value)
		}
		var ue *usageError
		if errors.As(err, &ue) {
			return s, errf("%s", strings.TrimPrefix(ue.msg, "--"+flag+": "))
		}
		if c.IsSet(flag) {
			s = keep
		}
	}
	return s, nil
}

// parseBuffer checks a --buffer SIZE as tee will read it.
func parseBuffer(v string) (string, error) {
	if n, err := builtins.ParseSize(v); err != nil || n < 1 {
		return "", &usageError{msg: fmt.Sprintf("--buffer: %q is not a size (64MiB, 1G)", v)}
	}
	return v, nil
}

// caret shows where a positioned error is, under the line of the file it
// is in, when stderr is a terminal: a person reads it there.
func (a *app) caret(err error) {
	var at *parser.Error
	var placed *engine.PlacedError
	switch {
	case errors.As(err, &placed):
		at = &placed.At
	case !errors.As(err, &at):
		return
	}
	src, ok := a.sources[at.Name]
	if !ok || at.Pos.Line == 0 || !isTerminal(a.stderr) {
		return
	}
	fmt.Fprint(a.stderr, caretLines(src, at.Pos))
}

// caretLines is the source line at p and a caret under its column.
func caretLines(src string, p parser.Pos) string {
	lines := strings.Split(src, "\n")
	if p.Line > len(lines) {
		return ""
	}
	line := lines[p.Line-1]
	col := min(max(p.Col-1, 0), len(line))
	// Tabs stay tabs under the line, so the caret lines up.
	pad := strings.Map(func(r rune) rune {
		if r == '\t' {
			return '\t'
		}
		return ' '
	}, line[:col])
	return fmt.Sprintf("    %s\n    %s^\n", line, pad)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
