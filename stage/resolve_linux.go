package stage

import (
	"errors"
	"fmt"

	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// Command is a stage resolved to the program that will run it.
type Command struct {
	// Path is the program's file; empty for a builtin, and for a stage
	// with no command words ("> file" alone), which only performs its
	// redirections.
	Path string
	Args []string
	Env  []string // the full environment of the process

	// Dir is the directory the stage runs in, ResolveIn's dir: its
	// process's working directory, and what the relative paths of its
	// words are relative to (its program "./s", its redirections, its
	// builtin's FILE operands). "" is gpipe's own.
	Dir string

	// Builtin names the builtin that runs the stage (Args[0] without
	// "command"); empty for a program.
	Builtin string

	// InProcess says the builtin runs inside gpipe, as a goroutine; when
	// false, a builtin runs in a gpipe helper process of its own. Set by
	// Place.
	InProcess bool

	// NoInput says the builtin never reads its standard input.
	NoInput bool

	// Forks says the builtin starts programs of its own (a copy of an
	// ordered par stage runs its program once per block): it runs in a
	// process of its own, in the pipeline's process group, so that a
	// teardown and the guardian reach what it starts.
	Forks bool

	// WritesOperands says the builtin writes files its operands name
	// (builtins.Builtin.WritesOperands).
	WritesOperands bool

	// Size, for a builtin that can say, is how many bytes it will write
	// to its stdout given its input's size (-1: unknown); -1 when it
	// cannot (builtins.Builtin.Size). Nil for a program, and for a
	// builtin that never knows.
	Size func(input int64) int64

	run builtins.Run // the builtin, parsed; nil for a program

	// Note says why a builtin's name runs the program of that name
	// instead: the builtin does not take these arguments.
	Note string
}

// BuiltinError is a builtin stage with arguments it does not take, and no
// program of that name to run instead. Nothing starts.
type BuiltinError struct {
	Stage string
	ID    int // the stage's index in the graph
	Err   error
}

func (e *BuiltinError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *BuiltinError) Unwrap() error { return e.Err }

// LookupError says a stage's program cannot be run. It is found before
// anything starts, so a pipeline with one missing command starts nothing.
// It reads as bash's message without bash's name: "foo: command not
// found", "./x.sh: Permission denied".
type LookupError struct {
	Stage string // "stage 2 (foo)"
	ID    int    // the stage's index in the graph
	Word  string // the command word bash names: "foo", "./x.sh" ("command foo": "foo")
	Code  int    // ExitNotFound, or ExitNotExecutable: found but not executable, as in bash
	Text  string // "command not found", "Permission denied", …

	dir bool // the name is a directory, which a PATH search skips
}

func (e *LookupError) Error() string { return e.Word + ": " + e.Text }

// Resolve decides what runs every stage, before anything starts:
//   - a name with a slash, or "command NAME", is a program;
//   - a builtin's name (reg) is that builtin, when it takes the arguments;
//     when it does not, the program of that name on PATH runs instead
//     (so "head -q file" still means coreutils' head), and with none
//     there it is a *BuiltinError;
//   - any other name is a program found in the PATH the stage itself will
//     see (a "PATH=… cmd" assignment counts, as in bash).
//
// env is the environment every stage inherits. A program that cannot be
// found or run is a *LookupError. The stages run in gpipe's own working
// directory: see ResolveIn.
func Resolve(g *parser.Graph, env []string, reg map[string]*builtins.Builtin) ([]Command, error) {
	return ResolveIn(g, "", env, reg)
}

// ResolveIn is Resolve for stages that run in directory dir (Command.Dir),
// as if gpipe had been started there: a program named with a slash, or
// found through a relative entry of PATH, is looked for there, and so is
// a file a builtin's arguments name when its parsing looks at it (split's
// OUTPUTs). dir should be absolute; "" is gpipe's own directory.
func ResolveIn(g *parser.Graph, dir string, env []string, reg map[string]*builtins.Builtin) ([]Command, error) {
	cmds := make([]Command, len(g.Stages))
	for i, st := range g.Stages {
		full := mergeEnv(env, st.Env)
		cmd := Command{Args: st.Args, Env: full, Dir: dir}
		if st.PerBlock {
			c, err := perBlock(st, cmd, dir, reg)
			if err != nil {
				return nil, err
			}
			cmds[i] = c
			continue
		}
		if len(st.Args) == 0 {
			cmds[i] = cmd
			continue
		}
		name := st.Args[0]
		forceExternal := strings.Contains(name, "/")
		if name == "command" && len(st.Args) > 1 && !strings.HasPrefix(st.Args[1], "-") {
			cmd.Args, name, forceExternal = st.Args[1:], st.Args[1], true
		}
		var usage error
		if b := reg[name]; b != nil && !forceExternal && !b.Hidden {
			cmd.run, usage = b.ParseIn(dir, cmd.Args[1:])
			if usage == nil {
				cmd.Builtin, cmd.NoInput, cmd.WritesOperands = name, b.NoInput, b.WritesOperands
				if size, args := b.Size, cmd.Args[1:]; size != nil {
					cmd.Size = func(input int64) int64 { return size(args, input) }
				}
				cmds[i] = cmd
				continue
			}
		}
		path, err := lookPath(dir, name, getenv(full, "PATH"))
		if err != nil {
			if usage != nil {
				return nil, &BuiltinError{Stage: st.Name(), ID: i, Err: usage}
			}
			err.Stage, err.ID, err.Word = st.Name(), i, name
			return nil, err
		}
		cmd.Path = path
		if usage != nil {
			cmd.Note = fmt.Sprintf("the builtin %s does not take these arguments (%v); running %s", name, usage, path)
		}
		cmds[i] = cmd
	}
	if err := parRanges(g, cmds, dir, reg); err != nil {
		return nil, err
	}
	return cmds, nil
}

// parRanges lets the copies of an ordered par stage that reads a file
// ("par -k -- grep x < FILE") read their blocks from the file themselves,
// when they all run programs: the dealer deals the blocks' places
// (--ranges), each copy opens the file (--file), and a block's bytes go
// from the file to the program by splice(2), through no other pipe.
func parRanges(g *parser.Graph, cmds []Command, dir string, reg map[string]*builtins.Builtin) error {
	copies := map[int][]int{}
	for i, st := range g.Stages {
		if st.CopyOf != nil && st.PerBlock {
			copies[st.CopyOf.ID] = append(copies[st.CopyOf.ID], i)
		}
	}
	for dealer, ids := range copies {
		file := ""
		for _, r := range g.Stages[dealer].Redirs {
			if r.FD == 0 {
				file = ""
				if r.Op == parser.RedirRead {
					file = r.Path
				}
			}
		}
		if file == "" {
			continue
		}
		programs := true
		for _, i := range ids {
			programs = programs && cmds[i].Forks
		}
		if !programs {
			continue
		}
		reparse := func(i int, extra ...string) error {
			c := &cmds[i]
			args := append(append([]string{c.Args[0]}, extra...), c.Args[1:]...)
			run, err := reg[c.Builtin].ParseIn(dir, args[1:])
			if err != nil {
				return &BuiltinError{Stage: g.Stages[i].Name(), ID: i, Err: err}
			}
			c.Args, c.run = args, run
			return nil
		}
		if err := reparse(dealer, "--ranges"); err != nil {
			return err
		}
		for _, i := range ids {
			if err := reparse(i, "--file", file); err != nil {
				return err
			}
		}
	}
	return nil
}

// perBlock resolves a copy of an ordered par stage: the builtin par-slot,
// which runs the stage's words once per block, as a builtin inside it
// when they name one that takes them, else as the program they name
// (found as for any stage). A slot that runs programs runs in a process
// of its own (Command.Forks).
func perBlock(st *parser.Stage, cmd Command, dir string, reg map[string]*builtins.Builtin) (Command, error) {
	slot := reg["par-slot"]
	words := st.Args
	name := words[0]
	args := []string{"par-slot"}
	// As for any stage: the builtin when it takes the words, else the
	// program of that name ("cat -A" is coreutils').
	var usage error
	b := reg[name]
	if b != nil && !b.Hidden && !strings.Contains(name, "/") {
		_, usage = b.ParseIn(dir, words[1:])
	}
	if b == nil || b.Hidden || strings.Contains(name, "/") || usage != nil {
		if name == "command" && len(words) > 1 {
			words, name = words[1:], words[1]
		}
		path, err := lookPath(dir, name, getenv(cmd.Env, "PATH"))
		if err != nil {
			if usage != nil {
				return Command{}, &BuiltinError{Stage: st.Name(), ID: st.ID, Err: usage}
			}
			err.Stage, err.ID, err.Word = st.Name(), st.ID, name
			return Command{}, err
		}
		args = append(args, "--program", path)
		cmd.Forks = true
		if usage != nil {
			cmd.Note = fmt.Sprintf("the builtin %s does not take these arguments (%v); running %s", name, usage, path)
		}
	}
	cmd.Args = append(append(args, "--"), words...)
	run, err := slot.ParseIn(dir, cmd.Args[1:])
	if err != nil {
		return Command{}, &BuiltinError{Stage: st.Name(), ID: st.ID, Err: err}
	}
	cmd.Builtin, cmd.run = slot.Name, run
	return cmd, nil
}

// Place decides where each builtin runs: inside gpipe (the default), or in
// a process of its own when isolate is set or when one of its redirections
// may block when opened (a FIFO), which must hold up no other stage.
//
// An edge that asks for shm (a pipeline file's "@shm") joins builtins in
// processes of their own, as --transport shm does.
//
// The same goes for a builtin whose stdin or stdout is a named FIFO (a
// process substitution under --transport fifo): its helper process opens
// the FIFO, which waits for the other side.
//
// And for a builtin that reads gpipe's standard input when that is a
// terminal (ttyStdin): the pipeline's process group has the terminal, not
// gpipe, so the builtin reads it from a process in that group, where
// Ctrl-C, Ctrl-Z and reading from the background act on it as on a
// program.
func Place(g *parser.Graph, cmds []Command, isolate, ttyStdin bool) {
	opensFIFO := map[int]bool{}
	shm := map[int]bool{} // ends of an edge that asks for a shm ring
	for _, e := range g.Edges {
		if e.Transport == parser.TransportShm {
			shm[e.From.Stage], shm[e.To.Stage] = true, true
		}
		if path, ok := plumbing.FIFOPath(e); ok {
			owner := e.From.Stage
			if e.To.Name == path {
				opensFIFO[e.From.Stage] = true
				owner = e.To.Stage
			} else {
				opensFIFO[e.To.Stage] = true
			}
			// The stage whose word the path is opens it itself: through
			// a redirection ("gen > >(cat)") that is a blocking open(2),
			// which only a process of its own may wait in (the other
			// side may start after it).
			for _, r := range g.Stages[owner].Redirs {
				if r.Path == path {
					opensFIFO[owner] = true
				}
			}
		}
	}
	for i := range cmds {
		c := &cmds[i]
		readsTTY := ttyStdin && !c.NoInput && readsGpipeStdin(g, i)
		c.InProcess = c.Builtin != "" && !c.Forks && !isolate && !blockingRedirect(c.Dir, g.Stages[i]) && !opensFIFO[i] && !shm[i] && !readsTTY
	}
}

// readsGpipeStdin reports whether stage i's standard input is gpipe's own:
// no edge feeds it, it shares no other stage's, and no redirection of its
// replaces it.
func readsGpipeStdin(g *parser.Graph, i int) bool {
	d := g.Desc(i, 0)
	return d.Own && !d.Redirected
}

// Infos tells plumbing, for each stage, whether its edges can be rings (a
// builtin's can), and which of its descriptors must be real ones because a
// redirection touches them.
func Infos(g *parser.Graph, cmds []Command) []plumbing.StageInfo {
	infos := make([]plumbing.StageInfo, len(cmds))
	for i, c := range cmds {
		name := c.Builtin
		if name == "" && len(c.Args) > 0 {
			name = c.Args[0]
		}
		info := plumbing.StageInfo{Name: name, Rings: c.Builtin != "" && !c.Forks, InProcess: c.InProcess, Touched: touchedFDs(g.Stages[i])}
		switch {
		case c.Path != "":
			info.Why = "is an external program"
		case c.Forks:
			// Its program's input and output go by splice(2) between
			// pipes (a copy of par -k).
			info.Why = "runs a program per block"
		case c.Builtin == "":
			info.Why = "runs no program"
		}
		infos[i] = info
	}
	return infos
}

// lookPath finds name the way bash does: a name with a slash is used as it
// is; otherwise the first executable file in PATH wins, directories are
// skipped, and a matching file that is not executable is reported only when
// nothing better is found. A relative name, or a relative entry of PATH, is
// looked for in dir (see ResolveIn); the path returned is as written, for
// the stage's process, which starts in dir.
func lookPath(dir, name, path string) (string, *LookupError) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(inDir(dir, name))
	}
	var denied *LookupError
	for _, entry := range filepath.SplitList(path) {
		if entry == "" {
			entry = "."
		}
		p := filepath.Join(entry, name)
		err := checkExecutable(inDir(dir, p))
		if err == nil {
			return p, nil
		}
		// Like bash, the search skips directories, and remembers a file
		// it may not execute in case nothing better turns up.
		if err.Code == ExitNotExecutable && !err.dir && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", &LookupError{Code: ExitNotFound, Text: "command not found"}
}

// inDir is path as the system calls of a stage that runs in dir must name
// it from gpipe's own directory: joined to dir when relative (and dir is
// not gpipe's own, ""), as it is otherwise. Nothing is cleaned: "x/../y"
// means what it means to the kernel. Messages name the path as the user
// wrote it, never this.
func inDir(dir, path string) string {
	if dir == "" || path == "" || filepath.IsAbs(path) {
		return path
	}
	return strings.TrimSuffix(dir, "/") + "/" + path
}

func checkExecutable(p string) *LookupError {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &LookupError{Code: ExitNotFound, Text: errText(syscall.ENOENT)}
	case err != nil:
		return &LookupError{Code: ExitNotExecutable, Text: errText(err)}
	case fi.IsDir():
		return &LookupError{Code: ExitNotExecutable, Text: errText(syscall.EISDIR), dir: true}
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return &LookupError{Code: ExitNotExecutable, Text: errText(err)}
	}
	return nil
}

// bashError is the error of a stage that did not start because a
// redirection or the program's start failed, worded as bash words it
// without its own name: the path, then the system's message, and nothing
// of gpipe's ("missing.txt: No such file or directory", "9: Bad file
// descriptor", "./x.sh: Permission denied"). When what failed is gpipe's
// own resources (ExitCannotStart), which bash would not meet there, the stage
// is named first (stage, "stage 2 (cat)"), as for gpipe's other failures.
func bashError(stage string, code int, err error) error {
	if code == ExitCannotStart {
		return fmt.Errorf("%s: %w", stage, err)
	}
	return err
}

// errText is the system's message for err without the operation and path
// around it, as strerror(3) words it and bash prints it: "Permission
// denied". Go's own text for an errno is the C library's with its first
// letter lowered; the letter is raised again.
func errText(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// mergeEnv returns base with the assignments applied: a name assigned
// replaces its inherited value, in place, so the child sees each name once.
func mergeEnv(base, assigns []string) []string {
	if len(assigns) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(assigns))
	set := map[string]string{}
	var order []string
	for _, a := range assigns {
		name, _, _ := strings.Cut(a, "=")
		if _, ok := set[name]; !ok {
			order = append(order, name)
		}
		set[name] = a
	}
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if a, ok := set[name]; ok {
			out = append(out, a)
			delete(set, name)
			continue
		}
		out = append(out, kv)
	}
	for _, name := range order {
		if a, ok := set[name]; ok {
			out = append(out, a)
		}
	}
	return out
}

func getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// touchedFDs lists the descriptors a redirection of st replaces, closes,
// copies or opens by path ("< /dev/fd/63"), with the reason plumbing gives
// for making them pipes: a ring is no descriptor.
func touchedFDs(st *parser.Stage) map[int]string {
	var m map[int]string
	mark := func(fd int, why string) {
		if m == nil {
			m = map[int]string{}
		}
		if _, ok := m[fd]; !ok {
			m[fd] = why
		}
	}
	name := func(fd int) string {
		switch fd {
		case 0:
			return "stdin"
		case 1:
			return "stdout"
		}
		return fmt.Sprintf("descriptor %d", fd)
	}
	for _, r := range st.Redirs {
		mark(r.FD, "redirects its "+name(r.FD))
		if r.Op == parser.RedirDup {
			mark(r.DupFD, "copies its "+name(r.DupFD))
		}
		if n, ok := fdPath(r.Path); ok && r.Op != parser.RedirDup && r.Op != parser.RedirClose {
			mark(n, "opens its "+name(n)+" by path")
		}
	}
	return m
}
