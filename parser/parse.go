package parser

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"mvdan.cc/sh/v3/syntax"
)

// Config says how a spec's words are expanded. The zero value expands with
// an empty environment and no globbing.
type Config struct {
	// Env is the environment that $VAR, ~ and the other expansions see, as
	// "NAME=value" pairs; PWD in it is the directory globs are relative to.
	Env []string

	// ReadDir lists a directory for globbing; os.ReadDir does what bash
	// does. Nil disables globbing: patterns stay as written.
	ReadDir func(string) ([]fs.DirEntry, error)
}

// runHint is the suggestion attached to every construct gpipe refuses
// because it is shell code rather than a pipeline of commands.
const runHint = "; run it as a stage: sh -c '…'"

// Parse reads src, a pipeline in bash syntax, and returns its graph with
// every word expanded. name is used in positions ("spec" for an inline spec).
// A problem in the source is returned as an *Error.
func Parse(name, src string, cfg Config) (*Graph, error) {
	if i := strings.IndexByte(src, 0); i >= 0 {
		// No argument can hold one, and the shell parser drops it.
		return nil, &Error{Name: name, Pos: posAt(src, i), Text: "a NUL byte in the source is not allowed"}
	}
	lines := newLineIndex(src)
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash), syntax.KeepComments(true)).Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, fromSyntaxError(name, lines, err)
	}
	if len(f.Stmts) == 0 {
		return nil, &Error{Name: name, Pos: Pos{1, 1}, Text: "empty spec: nothing to run"}
	}
	if err := checkSupported(name, lines, f, false); err != nil {
		return nil, err
	}
	splitDigitParams(f)
	b := &builder{name: name, lines: lines, cfg: cfg, g: &Graph{Name: name}, left: pipelineArgMax}
	if _, _, err := b.pipeline(f.Stmts[0]); err != nil {
		return nil, err
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	return b.g, nil
}

// fromSyntaxError turns the shell parser's error into an *Error.
func fromSyntaxError(name string, lines *lineIndex, err error) error {
	var pe syntax.ParseError
	if errors.As(err, &pe) {
		return &Error{Name: name, Pos: lines.pos(pe.Pos), Text: pe.Text}
	}
	var le syntax.LangError
	if errors.As(err, &le) {
		text := strings.TrimPrefix(le.Error(), le.Filename+":"+le.Pos.String()+": ")
		return &Error{Name: name, Pos: lines.pos(le.Pos), Text: text}
	}
	return &Error{Name: name, Pos: Pos{1, 1}, Text: err.Error()}
}

// lineIndex turns the shell parser's positions in a source into lines and
// columns. Those positions hold a column up to 16,383 and a line up to
// 262,143 only, and say 0 beyond (a long line of words, a file of many
// lines); they keep the byte offset, from which pos counts.
type lineIndex struct {
	src    string
	starts []int // the offset of each line, made on first need
}

func newLineIndex(src string) *lineIndex { return &lineIndex{src: src} }

// pos is the 1-based line and column of p, a position in the source.
func (x *lineIndex) pos(p syntax.Pos) Pos {
	if p.Line() > 0 && p.Col() > 0 {
		return Pos{Line: int(p.Line()), Col: int(p.Col())}
	}
	off := int(p.Offset()) // 0 when p is no position at all: 1:1
	if x.starts == nil {
		x.starts = []int{0}
		for i := 0; i < len(x.src); i++ {
			if x.src[i] == '\n' {
				x.starts = append(x.starts, i+1)
			}
		}
	}
	line := sort.SearchInts(x.starts, off+1) // the lines that start at or before off
	return Pos{Line: line, Col: off - x.starts[line-1] + 1}
}

// posAt is the position of byte offset i of src.
func posAt(src string, i int) Pos {
	return Pos{Line: 1 + strings.Count(src[:i], "\n"), Col: i - strings.LastIndexByte(src[:i], '\n')}
}

// checkSupported refuses anything that is not a pipeline of simple
// commands, at the offending construct that comes first in the source.
func checkSupported(name string, lines *lineIndex, f *syntax.File, file bool) error {
	src := lines.src
	var at Pos
	atOffset := uint(0)
	what := ""
	consider := func(p syntax.Pos, text string) {
		if what == "" || p.Offset() < atOffset {
			at, atOffset, what = lines.pos(p), p.Offset(), text
		}
	}
	if cr, text := lexicalTrap(src, f); cr >= 0 {
		at, atOffset, what = posAt(src, cr), uint(cr), text
	}
	if file {
		// A file holds several pipelines, one per line, all run at once.
		for _, s := range f.Stmts {
			if s.Semicolon.IsValid() && !s.Background {
				consider(s.Semicolon, "`;` is not part of a pipeline file: its pipelines all run at once, as one graph; put each on a line of its own")
			}
		}
	} else if len(f.Stmts) > 1 {
		first := f.Stmts[0]
		switch {
		case first.Background:
			consider(first.Semicolon, "`&` (a background job) is not part of a pipeline"+runHint)
		case first.Semicolon.IsValid():
			consider(first.Semicolon, "`;` is not part of a pipeline"+runHint)
		default:
			consider(f.Stmts[1].Pos(), "a second command is not part of a pipeline"+runHint)
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		if n == nil {
			return false
		}
		if p, text := unsupported(n); text != "" {
			consider(p, text)
		}
		if call, ok := n.(*syntax.CallExpr); ok && !file && len(call.Args) > 0 {
			if text := fileOnly(call.Args[0].Lit()); text != "" {
				consider(call.Args[0].Pos(), text)
			}
		}
		return true
	})
	if what != "" {
		return &Error{Name: name, Pos: at, Text: what}
	}
	return nil
}

// fileOnly says why cmd, a spec's unquoted command word, is refused when
// it is the syntax of a pipeline file: "@NAME" (a named stage), "@stdin",
// "@stdout" or a transport mark ("@fifo"). bash would look for a program
// of that name and not find it; a quoted '@NAME' still runs a program, and
// so does a word that is no reference ("@", "@a-b"). An "@" that is not
// the command word ("echo @x") is an ordinary word.
func fileOnly(cmd string) string {
	m := matchRef(cmd)
	if m == nil {
		return ""
	}
	const file = "; put the pipeline in a pipeline file and run it with gpipe -f FILE (docs/pipeline-files.md)"
	name := m[1]
	switch {
	case marks["@"+name] != TransportAuto:
		return "`" + cmd + "` is a transport mark, which only a pipeline file has; for every edge of a spec, use --transport " + name
	case name == refStdin || name == refStdout:
		return "`" + cmd + "` is gpipe's own " + name + " in a pipeline file only; in a spec, the pipeline's ends are gpipe's " + refStdin + " and " + refStdout + " already"
	}
	return "`" + cmd + "` refers to a named stage (`" + name + ": COMMAND…`), which only a pipeline file has" + file
}

// lexicalTrap returns the offset of the first byte of src that the shell
// parser does not read as bash does, and why, or -1. Rather than run
// something else than bash would, gpipe refuses those:
//
//   - a carriage return outside quotes and comments, which it reads as a
//     blank ("a\rb" is two words for it, one for bash), and "\\\r\n" as a
//     line continuation;
//   - a carriage return before a newline, which it drops even inside quotes;
//   - a line continuation right after "$" outside single quotes, after which
//     it loses or misreads the parameter ("x$\\\n1a" is "x$" for it);
//   - a backslash ending a comment, which it takes for a line continuation
//     that joins the next line to the command before the comment (refused
//     also before trailing blanks and at the end of the source, which a
//     printer may turn into that).
func lexicalTrap(src string, f *syntax.File) (int, string) {
	if !strings.ContainsAny(src, "\r\\") {
		return -1, ""
	}
	quoted := make([]bool, len(src))  // in single or double quotes
	single := make([]bool, len(src))  // in single quotes, where "\\" is literal
	comment := make([]bool, len(src)) // in a comment
	joining := make([]bool, len(src)) // a backslash that ends a comment
	mark := func(in []bool, start, end uint) {
		for i := start; i < end && i < uint(len(src)); i++ {
			in[i] = true
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n.(type) {
		case *syntax.SglQuoted:
			mark(quoted, n.Pos().Offset(), n.End().Offset())
			mark(single, n.Pos().Offset(), n.End().Offset())
		case *syntax.DblQuoted:
			mark(quoted, n.Pos().Offset(), n.End().Offset())
		case *syntax.Comment:
			// To the end of the line: a comment ends at the newline.
			start := n.Pos().Offset()
			end := uint(len(src))
			if i := strings.IndexByte(src[start:], '\n'); i >= 0 {
				end = start + uint(i)
			}
			mark(comment, start, end)
			// Blanks after the backslash do not count: printers drop them.
			text := strings.TrimRightFunc(src[start:end], unicode.IsSpace)
			if n := len(text) - len(strings.TrimRight(text, `\`)); n%2 == 1 {
				joining[start+uint(len(text))-1] = true
			}
		}
		return n != nil
	})
	escaped := func(i int) bool { // by an odd number of backslashes
		n := 0
		for j := i - 1; j >= 0 && src[j] == '\\' && !single[j]; j-- {
			n++
		}
		return n%2 == 1
	}
	for i := 0; i < len(src); i++ {
		switch {
		case joining[i]:
			return i, "a backslash at the end of a comment is not supported (the shell parser reads it as a line continuation, bash does not); remove it"
		case comment[i]:
		case src[i] == '\r' && !quoted[i]:
			return i, "a carriage return outside quotes is not supported (CRLF line endings?); quote it or remove it"
		case src[i] == '\r' && i+1 < len(src) && src[i+1] == '\n':
			return i, "a carriage return before a newline is not supported (CRLF line endings?); write it as $'\\r' or remove it"
		case src[i] == '$' && !single[i] && strings.HasPrefix(src[i+1:], "\\\n") && !escaped(i):
			return i, "a line continuation right after `$` is not supported; join the lines"
		}
	}
	return -1, ""
}

// splitDigitParams makes "$12" read as bash reads it, "$1" then "2". The
// shell parser does so too, except after a line continuation: it reads
// "$\<newline>12" as one parameter named 12.
func splitDigitParams(f *syntax.File) {
	split := func(parts []syntax.WordPart) []syntax.WordPart {
		for i := 0; i < len(parts); i++ {
			pe, ok := parts[i].(*syntax.ParamExp)
			if !ok || !pe.Short || pe.Param == nil || len(pe.Param.Value) < 2 || !allDigits(pe.Param.Value) {
				continue
			}
			v := pe.Param.Value
			first := *pe
			first.Param = &syntax.Lit{ValuePos: pe.Param.ValuePos, ValueEnd: pe.Param.ValueEnd, Value: v[:1]}
			rest := &syntax.Lit{ValuePos: pe.Param.ValuePos, ValueEnd: pe.Param.ValueEnd, Value: v[1:]}
			parts = append(parts[:i], append([]syntax.WordPart{&first, rest}, parts[i+1:]...)...)
		}
		return parts
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Word:
			n.Parts = split(n.Parts)
		case *syntax.DblQuoted:
			n.Parts = split(n.Parts)
		}
		return true
	})
}

// unsupported says whether n is outside what gpipe runs, and why.
func unsupported(n syntax.Node) (syntax.Pos, string) {
	switch n := n.(type) {
	case *syntax.Stmt:
		switch {
		case n.Negated:
			return n.Pos(), "`!` (negating a pipeline's status) is not supported" + runHint
		case n.Background:
			return n.Semicolon, "`&` (a background job) is not part of a pipeline" + runHint
		case n.Coprocess, n.Disown:
			return n.Semicolon, "a coprocess is not part of a pipeline" + runHint
		}
	case *syntax.BinaryCmd:
		switch n.Op {
		case syntax.AndStmt, syntax.OrStmt:
			return n.OpPos, "`" + n.Op.String() + "` is not part of a pipeline" + runHint
		}
	case *syntax.Subshell:
		return n.Pos(), "a subshell `( … )` is not a pipeline stage" + runHint
	case *syntax.Block:
		return n.Pos(), "a block `{ … }` is not a pipeline stage" + runHint
	case *syntax.IfClause:
		return n.Pos(), "an if statement is not a pipeline stage" + runHint
	case *syntax.WhileClause:
		if n.Until {
			return n.Pos(), "an until loop is not a pipeline stage" + runHint
		}
		return n.Pos(), "a while loop is not a pipeline stage" + runHint
	case *syntax.ForClause:
		if n.Select {
			return n.Pos(), "a select loop is not a pipeline stage" + runHint
		}
		return n.Pos(), "a for loop is not a pipeline stage" + runHint
	case *syntax.CaseClause:
		return n.Pos(), "a case statement is not a pipeline stage" + runHint
	case *syntax.FuncDecl:
		return n.Pos(), "a function definition is not a pipeline stage" + runHint
	case *syntax.ArithmCmd:
		return n.Pos(), "an arithmetic command `(( … ))` is not a pipeline stage" + runHint
	case *syntax.TestClause:
		return n.Pos(), "a test `[[ … ]]` is not a pipeline stage" + runHint
	case *syntax.DeclClause:
		return n.Pos(), "`" + n.Variant.Value + "` is a shell builtin, not a pipeline stage" + runHint
	case *syntax.LetClause:
		return n.Pos(), "`let` is a shell builtin, not a pipeline stage" + runHint
	case *syntax.TimeClause:
		return n.Pos(), "`time` is not supported in a pipeline" + runHint
	case *syntax.CoprocClause:
		return n.Pos(), "a coprocess is not part of a pipeline" + runHint
	case *syntax.TestDecl:
		return n.Pos(), "a test declaration is not a pipeline stage" + runHint
	case *syntax.CmdSubst:
		return n.Pos(), "command substitution `$(…)` is not supported" + runHint
	case *syntax.Assign:
		switch {
		case n.Array != nil:
			return n.Pos(), "an array assignment is not supported"
		case n.Index != nil:
			return n.Pos(), "an indexed assignment is not supported"
		}
	case *syntax.Redirect:
		switch n.Op {
		case syntax.Hdoc, syntax.DashHdoc:
			return n.Pos(), "a here-document is not supported yet" + runHint
		case syntax.WordHdoc:
			return n.Pos(), "a here-string `<<<` is not supported yet" + runHint
		}
		if n.N != nil {
			if strings.HasPrefix(n.N.Value, "{") {
				return n.Pos(), "a named descriptor `" + n.N.Value + "` is not supported"
			}
			if fd, err := strconv.Atoi(n.N.Value); err != nil || fd > maxFD {
				return n.Pos(), "file descriptor " + n.N.Value + " is out of range"
			}
		}
	case *syntax.UnaryArithm:
		// The shell parser takes "--0" for a decrement of a variable named
		// 0, where bash, which expands first, reads "- -0".
		if w, ok := n.X.(*syntax.Word); ok && (n.Op == syntax.Inc || n.Op == syntax.Dec) && !syntax.ValidName(w.Lit()) {
			sign := n.Op.String()[:1]
			return n.OpPos, "`" + n.Op.String() + "` needs a variable name; for two signs, write `" + sign + " " + sign + "`"
		}
		if _, ok := n.X.(*syntax.Word); !ok && (n.Op == syntax.Inc || n.Op == syntax.Dec) {
			// "++A++": bash refuses it too, and the expander panics.
			return n.OpPos, "`" + n.Op.String() + "` needs a variable name, not an expression"
		}
	case *syntax.BinaryArithm:
		switch n.Op {
		case syntax.Assgn, syntax.AddAssgn, syntax.SubAssgn, syntax.MulAssgn, syntax.QuoAssgn,
			syntax.RemAssgn, syntax.AndAssgn, syntax.OrAssgn, syntax.XorAssgn, syntax.ShlAssgn, syntax.ShrAssgn:
			if w, ok := n.X.(*syntax.Word); ok && !syntax.ValidName(w.Lit()) {
				return n.OpPos, "`" + n.Op.String() + "` needs a variable name on its left (gpipe has no arrays)"
			}
		}
	case *syntax.ParamExp:
		assigns := n.Exp != nil && (n.Exp.Op == syntax.AssignUnset || n.Exp.Op == syntax.AssignUnsetOrNull)
		if n.Param != nil && (n.Param.Value == "@" || n.Param.Value == "*") && n.Index == nil && !assigns &&
			(n.Exp != nil || n.Repl != nil || n.Slice != nil || n.Excl) {
			return n.Pos(), "an operator on `$" + n.Param.Value + "` is not supported: gpipe has no positional parameters"
		}
		if n.Repl != nil && n.Repl.Orig != nil && len(n.Repl.Orig.Parts) > 0 {
			if lit, ok := n.Repl.Orig.Parts[0].(*syntax.Lit); ok && (strings.HasPrefix(lit.Value, "#") || strings.HasPrefix(lit.Value, "%")) {
				// The expander reads the anchor as part of the pattern,
				// and a silently different result is worse than none.
				return n.Pos(), "anchored substitution `${name/" + lit.Value[:1] + "pattern/…}` is not supported" + runHint
			}
		}
		if n.Exp != nil && n.Exp.Op == syntax.OtherParamOps {
			// The shell parser checks the operator's first token only:
			// it takes "${x@A$}" in double quotes, which expand panics on.
			if w := n.Exp.Word; w == nil || !strings.Contains("QEaAPUuLKk", w.Lit()) || len(w.Lit()) != 1 {
				at, op := n.Pos(), ""
				if w != nil {
					at, op = w.Pos(), printWord(w)
				}
				return at, "invalid @ expansion operator `" + op + "`"
			}
		}
		if n.Exp != nil && (n.Exp.Op == syntax.AssignUnset || n.Exp.Op == syntax.AssignUnsetOrNull) {
			switch {
			case n.Param == nil:
			case n.Index != nil:
				// gpipe has no arrays: they are refused in assignments too.
				return n.Pos(), "assigning an array element in an expansion is not supported"
			case !syntax.ValidName(n.Param.Value):
				return n.Pos(), "$" + n.Param.Value + ": cannot assign in this way"
			}
		}
	}
	return syntax.Pos{}, ""
}

// builder flattens the syntax tree of one pipeline into the graph.
type builder struct {
	name  string
	lines *lineIndex // of the source, for positions
	cfg   Config
	g     *Graph
	left  int64 // what is left of pipelineArgMax

	// file is set while a pipeline file is built: it knows the named
	// stages, the references to them and the transport marks.
	file *fileBuilder
}

func (b *builder) errorf(at syntax.Pos, text string) error {
	return &Error{Name: b.name, Pos: b.lines.pos(at), Text: text}
}

// end is one end of a pipeline: the stage there and the descriptors by
// which it reads (in) and writes (out) its neighbours. In a pipeline file
// it may be a reference to a named stage ("@name", resolved once every
// stage is built) or gpipe's own stdin or stdout.
type end struct {
	st      *Stage
	ref     string // the named stage, or refStdin / refStdout
	in, out int
	name    string // the path by which the stage reaches in or out (Port.Name)
	pos     Pos    // of the reference

	// mark is a transport mark ("@fifo") at this end of the pipeline: it
	// is the transport of the edge of the process substitution that holds
	// the pipeline.
	mark    Transport
	markPos syntax.Pos
}

// element is one command of a pipeline and the operator before it.
type element struct {
	s   *syntax.Stmt
	op  syntax.Pos // the "|" or "|&" before s; invalid for the first
	all bool       // that operator is "|&"
}

// flatten lists the commands of pipeline s in order.
func (b *builder) flatten(s *syntax.Stmt, op syntax.Pos, all bool, out []element) ([]element, error) {
	c, ok := s.Cmd.(*syntax.BinaryCmd)
	if !ok {
		return append(out, element{s: s, op: op, all: all}), nil
	}
	if len(s.Redirs) > 0 {
		return nil, b.errorf(s.Redirs[0].Pos(), "a redirection of a whole pipeline is not supported"+runHint)
	}
	out, err := b.flatten(c.X, op, all, out)
	if err != nil {
		return nil, err
	}
	return b.flatten(c.Y, c.OpPos, c.Op == syntax.PipeAll, out)
}

// pipeline adds the stages of s in order, joining neighbours by an edge
// from fd 1 to fd 0, and returns the ends of its top-level chain. "a |& b"
// also sends a's stderr down the pipe, after a's own redirections, as bash
// does. While the graph is built, a stage's ID is its place in the order of
// creation; finish renumbers them.
func (b *builder) pipeline(s *syntax.Stmt) (first, last end, err error) {
	elems, err := b.flatten(s, syntax.Pos{}, false, nil)
	if err != nil {
		return end{}, end{}, err
	}
	var prev *end          // the last stage or reference so far
	var opAfter syntax.Pos // the operator right after prev
	lastWasMark := false
	pending := TransportAuto // a transport mark since prev
	var pendingAt syntax.Pos
	for i, el := range elems {
		if el.all {
			// "|&" also sends the stderr of the command before it.
			if lastWasMark || prev.st == nil {
				return end{}, end{}, b.errorf(el.op, "`|&` needs a command right before it; redirect a named stage's stderr in its definition")
			}
			prev.st.Redirs = append(prev.st.Redirs, Redirect{Pos: b.lines.pos(el.op), FD: 2, Op: RedirDup, DupFD: 1})
		}
		if b.file != nil {
			if t, ok := b.file.transportMark(el.s); ok {
				if lastWasMark {
					return end{}, end{}, b.errorf(el.s.Pos(), "two transport marks in a row")
				}
				pending, pendingAt, lastWasMark = t, el.s.Pos(), true
				if prev == nil {
					first.mark, first.markPos = t, pendingAt
				}
				continue
			}
		}
		cur, err := b.element(el.s)
		if err != nil {
			return end{}, end{}, err
		}
		if prev == nil {
			cur.mark, cur.markPos = first.mark, first.markPos
			first = cur
		} else if err := b.join(*prev, cur, b.lines.pos(opAfter), pending); err != nil {
			return end{}, end{}, err
		}
		pending, lastWasMark = TransportAuto, false
		prev = &cur
		if i+1 < len(elems) {
			opAfter = elems[i+1].op
		}
	}
	if prev == nil {
		return end{}, end{}, b.errorf(s.Pos(), "a transport mark needs a stage on each side")
	}
	last = *prev
	last.mark, last.markPos = pending, pendingAt
	return first, last, nil
}

// element builds one command of a pipeline: a stage, or in a pipeline
// file a reference to a named one.
func (b *builder) element(s *syntax.Stmt) (end, error) {
	if b.file != nil {
		if ref, ok, err := b.file.reference(s); ok || err != nil {
			return ref, err
		}
	}
	switch c := s.Cmd.(type) {
	case *syntax.CallExpr, nil:
		call, _ := c.(*syntax.CallExpr)
		// The stage takes its place before its words are expanded: the
		// process substitutions among them wire edges to it.
		st := &Stage{ID: len(b.g.Stages), Pos: b.lines.pos(s.Pos())}
		b.g.Stages = append(b.g.Stages, st)
		if b.file != nil {
			if err := b.file.define(st, call); err != nil {
				return end{}, err
			}
		}
		if err := b.stage(st, s, call); err != nil {
			return end{}, err
		}
		return end{st: st, in: 0, out: 1}, nil
	}
	// checkSupported has refused every other command already.
	return end{}, b.errorf(s.Pos(), "not a pipeline stage"+runHint)
}

// join adds the edge from's output → to's input.
func (b *builder) join(from, to end, at Pos, t Transport) error {
	e := &Edge{From: Port{Stage: -1, FD: from.out, Name: from.name}, To: Port{Stage: -1, FD: to.in, Name: to.name}, Pos: at, Transport: t}
	if from.st != nil {
		e.From.Stage = from.st.ID
	}
	if to.st != nil {
		e.To.Stage = to.st.ID
	}
	if from.ref != "" || to.ref != "" {
		return b.file.pendingEdge(e, from, to)
	}
	b.g.Edges = append(b.g.Edges, e)
	return nil
}

// firstProcSubstFD is the descriptor of a stage's first process
// substitution; the next get the numbers below. bash moves each to the
// highest free descriptor under 64, so "echo <(a) <(b)" prints
// "/dev/fd/63 /dev/fd/62" under bash and gpipe alike.
const (
	firstProcSubstFD = FirstPathFD
	lastProcSubstFD  = LastPathFD
)

// FirstPathFD and LastPathFD bound the descriptors a stage reaches by a
// path among its words (/dev/fd/63, /dev/fd/62, …): a process
// substitution's, and the outputs of a tee gpipe adds. bash's own
// descriptors are 10 and up, but not ours.
const FirstPathFD, LastPathFD = 63, 10

// procSubst builds the pipeline of a process substitution in a word of
// owner, wires it to owner at a descriptor of its own, and returns the
// path owner sees in its place: "<(…)" is read by owner, ">(…)" written.
func (b *builder) procSubst(owner *Stage, next *int, ps *syntax.ProcSubst) (string, error) {
	op := ps.Op.String() + "…)"
	switch {
	case len(ps.Stmts) == 0:
		return "", b.errorf(ps.Pos(), "an empty process substitution `"+op+"` runs nothing")
	case len(ps.Stmts) > 1:
		return "", b.errorf(ps.Stmts[1].Pos(), "a process substitution `"+op+"` holds one pipeline, not a list"+runHint)
	case *next < lastProcSubstFD:
		return "", b.errorf(ps.Pos(), fmt.Sprintf("more than %d process substitutions in one stage", firstProcSubstFD-lastProcSubstFD+1))
	}
	fd := *next
	*next--
	created := len(b.g.Stages)
	first, last, err := b.pipeline(ps.Stmts[0])
	if err != nil {
		return "", err
	}
	for _, st := range b.g.Stages[created:] {
		if st.Parent == nil {
			st.Parent = owner
		}
	}
	// A transport mark goes at the end of the pipeline that faces the
	// stage: "<(seq 3 | @fifo)", ">(@fifo | wc -l)".
	mark, stray := last.mark, first
	if ps.Op != syntax.CmdIn {
		mark, stray = first.mark, last
	}
	if stray.mark != TransportAuto {
		return "", b.errorf(stray.markPos, "a transport mark needs a stage on each side")
	}
	// The stage gets the path bash gives it. A mark "@fifo" is the
	// edge's transport: the planner then names a FIFO for the port and
	// puts its path in the stage's words in place of this one.
	path := "/dev/fd/" + strconv.Itoa(fd)
	port := end{st: owner, in: fd, out: fd, name: path}
	if ps.Op == syntax.CmdIn {
		err = b.join(last, port, b.lines.pos(ps.Pos()), mark)
	} else {
		err = b.join(port, first, b.lines.pos(ps.Pos()), mark)
	}
	return path, err
}

// finish renumbers the stages in source order (the position of their first
// word; a word that brace expansion repeats keeps creation order; the
// stages gpipe adds after all the others), fills
// in what the stages of process substitutions share with their parents,
// and checks the graph.
func (b *builder) finish() error {
	g := b.g
	sorted := append([]*Stage(nil), g.Stages...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if (sorted[i].Added != "") != (sorted[j].Added != "") {
			return sorted[j].Added != "" // the stages gpipe adds come last
		}
		a, c := sorted[i].Pos, sorted[j].Pos
		return a.Line < c.Line || (a.Line == c.Line && a.Col < c.Col)
	})
	newID := make([]int, len(sorted))
	for i, st := range sorted {
		newID[st.ID] = i
	}
	for _, st := range sorted {
		st.ID = newID[st.ID]
	}
	g.Stages = sorted
	for _, e := range g.Edges {
		e.From.Stage, e.To.Stage = newID[e.From.Stage], newID[e.To.Stage]
	}
	for i := range g.StdoutFrom {
		g.StdoutFrom[i].Stage = newID[g.StdoutFrom[i].Stage]
	}
	for _, e := range g.StdinReaders {
		e.To.Stage = newID[e.To.Stage]
	}
	// Edges too are listed in source order, that of their "|", "<(" or ">(".
	sort.SliceStable(g.Edges, func(i, j int) bool {
		a, c := g.Edges[i].Pos, g.Edges[j].Pos
		return a.Line < c.Line || (a.Line == c.Line && a.Col < c.Col)
	})
	for _, st := range g.Stages {
		for fd := range 2 {
			if st.Parent == nil || st.ownStdio[fd] || wires(g, st, fd) || replacesFirst(st, fd) {
				continue
			}
			for p := st.Parent; p != nil; p = p.Parent {
				if wires(g, p, fd) {
					st.Inherits = append(st.Inherits, Inherit{FD: fd, From: Port{Stage: p.ID, FD: fd}})
					break
				}
			}
		}
	}
	return Check(g)
}

// wires reports whether an edge ends at descriptor fd of st.
func wires(g *Graph, st *Stage, fd int) bool {
	for _, e := range g.Edges {
		if (e.From.Stage == st.ID && e.From.FD == fd) || (e.To.Stage == st.ID && e.To.FD == fd) {
			return true
		}
	}
	return false
}

// replacesFirst reports whether the first of st's redirections that
// touches descriptor fd replaces it without reading it first: then
// whatever fd was before does not matter to the stage.
func replacesFirst(st *Stage, fd int) bool {
	for _, r := range st.Redirs {
		if r.Op == RedirDup && r.DupFD == fd {
			return false
		}
		if r.FD == fd {
			return true
		}
	}
	return false
}
