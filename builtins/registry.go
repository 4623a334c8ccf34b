package builtins

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gpipe/gpipe/plumbing"
)

// Run is a parsed builtin ready to run over its input and output, and the
// files its arguments name (tee's outputs, merge's inputs), which it opens
// through files. It returns nil on success; an error wrapping
// syscall.EPIPE when its reader went away (the stage then ends like a
// writer on a broken pipe).
type Run func(in plumbing.Source, out plumbing.Sink, files Files) error

// Files opens what a builtin's FILE arguments name. A process substitution
// expands to a path such as "/dev/fd/63", which names one of the stage's
// own ports: gpipe hands the builtin that port (a ring between builtins, a
// pipe otherwise) rather than a file of gpipe's own. Any other name is a
// file, opened as a program would open it. A Files is safe for use by
// several goroutines at once (tee opens each output in its own).
type Files interface {
	// Open opens name for reading.
	Open(name string) (plumbing.Source, error)
	// Create opens name for writing, created if missing, truncated unless
	// appendTo is set.
	Create(name string, appendTo bool) (plumbing.Sink, error)
}

// OutputStats is what one output of a fan-out (tee, split, par's dealer)
// held back for a reader slower than the others: the most it queued at
// once, and how much of it went to the temporary file once memory
// (--buffer) was full. par's dealer, which copies every byte it deals,
// also counts (Counted) what each output was given in all, and how long
// its writer had nothing to write (how long the copy got nothing from
// it); tee, whose bytes may go by tee(2) past its queues, does not.
type OutputStats struct {
	Output  string // as the builtin names it: "standard output", "/dev/fd/63", a file
	Peak    int64  // bytes
	Spilled int64  // bytes
	Counted bool
	Bytes   int64
	Starved time.Duration
}

// OutputReporter is a Files that keeps what a fan-out's outputs queued,
// for --stats. A builtin reports once, as it ends.
type OutputReporter interface {
	ReportOutputs([]OutputStats)
}

// OSFiles opens names as files, with no ports: what a builtin sees in a
// process where "/dev/fd/N" is the real descriptor N.
type OSFiles struct{}

func (OSFiles) Open(name string) (plumbing.Source, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return plumbing.NewFileSource(f), nil
}

func (OSFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(name, flag, 0o666)
	if err != nil {
		return nil, err
	}
	return plumbing.NewFileSink(f), nil
}

// Builtin is a stage that gpipe runs itself.
type Builtin struct {
	Name     string
	Synopsis string // "gen [-n N] [--bytes SIZE [--seed S]] [--text STR]"
	Summary  string // one line: what it does

	// Hidden says the builtin is gpipe's own, made by the planner (a copy
	// of an ordered par stage): not listed, and not what a stage's name
	// runs.
	Hidden bool

	// NoInput says the builtin never reads its standard input (gen): it
	// may run inside gpipe even when that input is a terminal.
	NoInput bool

	// Size, when not nil, is how many bytes the builtin will write to
	// its standard output, known before it runs from its arguments (as
	// Parse takes them) and its input's size (-1 when unknown); -1 when
	// it cannot say. --progress shows it as the edge's total.
	Size func(args []string, input int64) int64

	// WritesOperands says the builtin's operands are files it writes
	// (tee's and split's outputs, >(…) ports among them): gpipe stops such
	// a stage early (--stop-early) only when every operand is a port whose
	// reader has gone, never while it may still be writing to a file.
	WritesOperands bool

	// Namesake says the builtin stands in for the coreutils program of its
	// name (cat, head, tee, split), and takes only arguments for which it
	// gives that program's output: not --help or -h, whose answer is the
	// program's own, so that they are a *UsageError carrying the
	// builtin's help (UsageError.Help), and gpipe runs the program.
	Namesake bool

	// Parse checks args (without the name) and returns the stage to run.
	// A bad argument is a *UsageError. gpipe parses every builtin before
	// starting anything, so a usage error starts nothing. --help (and -h)
	// returns a stage that prints the builtin's help, but for a Namesake.
	Parse func(args []string) (Run, error)

	// ParseDir, when not nil, is Parse for a run whose relative paths are
	// relative to dir ("" is this process's directory): a builtin whose
	// parsing looks at the files its operands name (split) has one.
	// Parse is then ParseDir with "".
	ParseDir func(dir string, args []string) (Run, error)
}

// ParseIn is b.Parse for a stage that runs in directory dir, as if the
// process had been started there ("": its own directory): the files its
// parsing looks at are looked for there.
func (b *Builtin) ParseIn(dir string, args []string) (Run, error) {
	if b.ParseDir != nil {
		return b.ParseDir(dir, args)
	}
	return b.Parse(args)
}

// Help returns a stage that prints the builtin's own help, also for a
// Namesake, whose --help is the program's.
func (b *Builtin) Help() Run {
	run, err := b.Parse([]string{"--help"})
	if ue := (*UsageError)(nil); errors.As(err, &ue) && ue.Help != nil {
		return ue.Help
	}
	return run
}

// ExitError ends a builtin with exit status Code and no message of
// gpipe's: the status of a program the builtin ran, which said what it had
// to say on its own stderr (a copy of an ordered par stage).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// UsageError is a builtin's bad argument.
type UsageError struct {
	Builtin string
	Msg     string

	// Help, when set, prints the builtin's own help: the arguments asked
	// a Namesake for help, which is the program's to give.
	Help Run
}

func (e *UsageError) Error() string { return e.Builtin + ": " + e.Msg }

// Default returns a fresh registry of every builtin, by name.
func Default() map[string]*Builtin {
	m := map[string]*Builtin{}
	for _, b := range []*Builtin{genBuiltin(), filterBuiltin(), sinkBuiltin(), countBuiltin(), headBuiltin(), catBuiltin(), sha256Builtin(),
		teeBuiltin(), mergeBuiltin(), splitBuiltin(), parBuiltin(), parSlotBuiltin()} {
		m[b.Name] = b
	}
	return m
}

// flags returns a flag set for a builtin that reports errors instead of
// printing them, and a parse function that turns its errors into
// UsageErrors. --help makes the builtin print its usage and succeed, but
// for a Namesake (see Builtin.Namesake).
func flags(b *Builtin) (*flag.FlagSet, func(args []string) (help Run, err error)) {
	fs := flag.NewFlagSet(b.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	parse := func(args []string) (Run, error) {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) && b.Namesake {
			return nil, &UsageError{Builtin: b.Name, Help: usageRun(b, fs),
				Msg: "the help asked for is the program " + b.Name + "'s; the builtin's own: gpipe help " + b.Name}
		}
		if errors.Is(err, flag.ErrHelp) {
			return usageRun(b, fs), nil
		}
		if err != nil {
			return nil, &UsageError{Builtin: b.Name, Msg: err.Error()}
		}
		return nil, nil
	}
	return fs, parse
}

// usageRun prints the builtin's usage to its output.
func usageRun(b *Builtin, fs *flag.FlagSet) Run {
	return func(_ plumbing.Source, out plumbing.Sink, _ Files) error {
		return plumbing.Write(out, []byte(usage(b, fs)))
	}
}

// usage is a builtin's help: its synopsis, what it does, and its flags
// in GNU's style, as the README writes them: one letter after one dash
// ("-n N"), a word after two ("--bytes SIZE"), the value named as the
// synopsis names it, the default when there is one.
func usage(b *Builtin, fs *flag.FlagSet) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "usage: %s\n%s\n", b.Synopsis, b.Summary)
	type row struct{ left, right string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		left := "-" + f.Name
		if len(f.Name) > 1 {
			left = "--" + f.Name
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
			left += " " + valueName(b.Synopsis, left)
		}
		right := f.Usage
		switch f.DefValue {
		case "", "0", "false":
		default:
			right += " (default " + f.DefValue + ")"
		}
		rows = append(rows, row{left, right})
		width = max(width, len(left))
	})
	for _, r := range rows {
		fmt.Fprintf(&sb, "  %-*s  %s\n", width, r.left, r.right)
	}
	return sb.String()
}

// valueName is the name the synopsis gives flag's value ("N" in
// "[-n N]"); VALUE if it gives none.
func valueName(synopsis, flag string) string {
	fields := strings.FieldsFunc(synopsis, func(r rune) bool { return strings.ContainsRune(" []|", r) })
	for i, f := range fields {
		if f == flag && i+1 < len(fields) && !strings.HasPrefix(fields[i+1], "-") {
			return strings.TrimRight(fields[i+1], ".…")
		}
	}
	return "VALUE"
}

func usagef(b string, format string, args ...any) error {
	return &UsageError{Builtin: b, Msg: fmt.Sprintf(format, args...)}
}
