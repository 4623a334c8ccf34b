package parser

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// File is a pipeline file: its header (parameters and options) and, once
// its parameters have values, its graph. docs/pipeline-files.md describes
// the format; in short, a file is any inline spec plus
//   - several pipelines, one per line, all run at once as one graph;
//   - "param NAME[=DEFAULT]  # description" and "option --flag…" lines in
//     the header, before the first pipeline;
//   - named stages, "NAME: command…", referred to as "@NAME" (or
//     "@NAME:FD" for another descriptor) anywhere a command may stand;
//     "@stdin" and "@stdout" are gpipe's own;
//   - transport marks between two commands of a pipeline: "a | @fifo | b".
type File struct {
	Name    string
	Doc     string // the comment lines at the top, after a "#!" line
	Params  []Param
	Options []Option
	Graph   *Graph // nil from ReadHeader
}

// Param is a parameter a file declares.
type Param struct {
	Pos      Pos
	Name     string
	Default  string // expanded in the environment; "" when Required
	Required bool   // declared without a default
	Doc      string // the comment on the declaration's line
}

// Option is one word of an "option" line: a flag as the command line
// would give it ("--grace=5s"), or the value of the flag before it.
type Option struct {
	Pos  Pos
	Text string
}

// Names that "@" refers to without a stage of that name.
const (
	refStdin  = "stdin"
	refStdout = "stdout"
)

var (
	marks = map[string]Transport{"@pipe": TransportPipe, "@fifo": TransportFIFO, "@shm": TransportShm, "@mem": TransportMem}
)

// fileHeader reads src up to its graph: the syntax tree, the declarations
// and the statements that are pipelines.
type fileHeader struct {
	file      *File
	tree      *syntax.File
	lines     *lineIndex
	pipelines []*syntax.Stmt
}

// ReadHeader parses src, a pipeline file, far enough to list its
// parameters and options, without expanding its pipelines.
func ReadHeader(name, src string, cfg Config) (*File, error) {
	h, err := readHeader(name, src, cfg)
	if err != nil {
		return nil, err
	}
	return h.file, nil
}

func readHeader(name, src string, cfg Config) (*fileHeader, error) {
	if i := strings.IndexByte(src, 0); i >= 0 {
		return nil, &Error{Name: name, Pos: posAt(src, i), Text: "a NUL byte in the source is not allowed"}
	}
	lines := newLineIndex(src)
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash), syntax.KeepComments(true)).Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, fromSyntaxError(name, lines, err)
	}
	if err := checkSupported(name, lines, f, true); err != nil {
		return nil, err
	}
	splitDigitParams(f)
	h := &fileHeader{file: &File{Name: name, Doc: headerDoc(src)}, tree: f, lines: lines}
	seen := map[string]Pos{}
	for _, s := range f.Stmts {
		kind := declKind(s)
		if kind == "" {
			h.pipelines = append(h.pipelines, s)
			continue
		}
		if len(h.pipelines) > 0 {
			return nil, &Error{Name: name, Pos: lines.pos(s.Pos()), Text: fmt.Sprintf("`%s` goes in the file's header, before the first pipeline", kind)}
		}
		if len(s.Redirs) > 0 {
			return nil, &Error{Name: name, Pos: lines.pos(s.Redirs[0].Pos()), Text: fmt.Sprintf("a redirection of %s line means nothing", article(kind))}
		}
		call := s.Cmd.(*syntax.CallExpr)
		if len(call.Assigns) > 0 {
			return nil, &Error{Name: name, Pos: lines.pos(call.Assigns[0].Pos()), Text: fmt.Sprintf("an assignment before `%s` means nothing", kind)}
		}
		if kind == "option" {
			for _, w := range call.Args[1:] {
				v, err := literal(name, lines, cfg, w)
				if err != nil {
					return nil, err
				}
				h.file.Options = append(h.file.Options, Option{Pos: lines.pos(w.Pos()), Text: v})
			}
			continue
		}
		p, err := declParam(name, lines, cfg, s, call, seen)
		if err != nil {
			return nil, err
		}
		if at, ok := seen[p.Name]; ok {
			return nil, &Error{Name: name, Pos: p.Pos, Text: fmt.Sprintf("parameter %s is declared twice (first at %s)", p.Name, at)}
		}
		seen[p.Name] = p.Pos
		h.file.Params = append(h.file.Params, p)
	}
	if len(h.pipelines) == 0 {
		at := Pos{1, 1}
		if len(f.Stmts) > 0 {
			at = inside(src, lines.pos(f.Stmts[len(f.Stmts)-1].End()))
		}
		return nil, &Error{Name: name, Pos: at, Text: "no pipeline: nothing to run"}
	}
	return h, nil
}

// inside moves p back onto its line of src if it lies past the line's
// end: the shell parser puts the end of a file's last word that ends in
// a backslash ("param A=0\\") one byte beyond the file.
func inside(src string, p Pos) Pos {
	lines := strings.Split(src, "\n")
	if p.Line < 1 || p.Line > len(lines) {
		return p
	}
	if last := len(lines[p.Line-1]) + 1; p.Col > last {
		p.Col = last
	}
	return p
}

// ParseFile parses src, a pipeline file, with its parameters given as
// "name=value" in args, and returns it with its graph. Every problem,
// in the file or in args, is an *Error; one in args has no position.
func ParseFile(name, src string, args []string, cfg Config) (*File, error) {
	h, err := readHeader(name, src, cfg)
	if err != nil {
		return nil, err
	}
	values, err := paramValues(name, h.file.Params, args)
	if err != nil {
		return nil, err
	}
	env := append([]string(nil), cfg.Env...)
	for _, p := range h.file.Params {
		env = append(env, p.Name+"="+values[p.Name])
	}
	if err := checkParams(name, h.lines, h.tree, h.file.Params, cfg.Env); err != nil {
		return nil, err
	}
	fb := &fileBuilder{name: name, lines: h.lines, labels: map[string]*label{}, defs: map[*syntax.CallExpr]string{}}
	if err := fb.findLabels(name, h.tree); err != nil {
		return nil, err
	}
	quoteParams(h.tree, h.file.Params)
	cfg.Env = env
	b := &builder{name: name, lines: h.lines, cfg: cfg, g: &Graph{Name: name}, left: pipelineArgMax, file: fb}
	for _, s := range h.pipelines {
		first, last, err := b.pipeline(s)
		if err != nil {
			return nil, err
		}
		for _, e := range []end{first, last} {
			if e.mark != TransportAuto {
				return nil, b.errorf(e.markPos, "a transport mark needs a stage on each side")
			}
		}
		if first.ref != "" && first == last {
			return nil, &Error{Name: name, Pos: first.pos, Text: "a reference alone wires nothing: put it in a pipeline (@" + first.ref + " | …)"}
		}
	}
	if err := fb.resolve(b); err != nil {
		return nil, err
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	h.file.Graph = b.g
	return h.file, nil
}

// headerDoc is the first block of comment lines of src, after a "#!"
// line: what the file does, for --help.
func headerDoc(src string) string {
	var lines []string
	for i, line := range strings.Split(src, "\n") {
		if i == 0 && strings.HasPrefix(line, "#!") {
			continue
		}
		if !strings.HasPrefix(line, "#") {
			break
		}
		lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// article is "a `param`" or "an `option`".
func article(kind string) string {
	if kind == "option" {
		return "an `option`"
	}
	return "a `" + kind + "`"
}

// declKind is "param" or "option" when s is such a declaration.
func declKind(s *syntax.Stmt) string {
	call, ok := s.Cmd.(*syntax.CallExpr)
	if !ok || len(call.Args) == 0 {
		return ""
	}
	switch w := call.Args[0].Lit(); w {
	case "param", "option":
		return w
	}
	return ""
}

// declParam reads "param NAME[=DEFAULT]  # description".
func declParam(name string, lines *lineIndex, cfg Config, s *syntax.Stmt, call *syntax.CallExpr, declared map[string]Pos) (Param, error) {
	errAt := func(at syntax.Pos, text string) error { return &Error{Name: name, Pos: lines.pos(at), Text: text} }
	if len(call.Args) != 2 {
		at := call.Args[0].Pos()
		if len(call.Args) > 2 {
			at = call.Args[2].Pos()
		}
		return Param{}, errAt(at, "a parameter is declared as `param NAME` or `param NAME=DEFAULT`, one per line; quote a default with blanks in it")
	}
	w := call.Args[1]
	first, ok := w.Parts[0].(*syntax.Lit)
	if !ok {
		return Param{}, errAt(w.Pos(), "a parameter's name comes first: `param NAME` or `param NAME=DEFAULT`")
	}
	pname, def, hasDefault := strings.Cut(first.Value, "=")
	if !hasDefault && len(w.Parts) > 1 {
		pname = "" // a quote or expansion in the name
	}
	if !syntax.ValidName(pname) {
		return Param{}, errAt(w.Pos(), fmt.Sprintf("%q is not a parameter name (letters, digits and _, not starting with a digit)", strings.SplitN(printWord(w), "=", 2)[0]))
	}
	p := Param{Pos: lines.pos(w.Pos()), Name: pname, Required: !hasDefault}
	for _, c := range s.Comments {
		if c.Pos().Line() == s.Pos().Line() {
			p.Doc = strings.TrimSpace(c.Text)
		}
	}
	if hasDefault {
		dw := &syntax.Word{Parts: append([]syntax.WordPart{&syntax.Lit{ValuePos: first.ValuePos, ValueEnd: first.ValueEnd, Value: def}}, w.Parts[1:]...)}
		// A default sees the environment only: parameters get their
		// values after every default is known.
		var bad *syntax.ParamExp
		syntax.Walk(dw, func(n syntax.Node) bool {
			if pe, ok := n.(*syntax.ParamExp); ok && bad == nil && pe.Param != nil {
				if _, ok := declared[pe.Param.Value]; ok {
					bad = pe
				}
			}
			return bad == nil
		})
		if bad != nil {
			return Param{}, errAt(bad.Pos(), fmt.Sprintf("the default of %s uses parameter $%s: a default sees the environment only", pname, bad.Param.Value))
		}
		if err := checkParams(name, lines, &syntax.File{Stmts: []*syntax.Stmt{{Cmd: &syntax.CallExpr{Args: []*syntax.Word{dw}}}}}, nil, cfg.Env); err != nil {
			return Param{}, err
		}
		v, err := literal(name, lines, cfg, dw)
		if err != nil {
			return Param{}, err
		}
		p.Default = v
	}
	return p, nil
}

// literal expands w as one string in the environment, as bash expands an
// assignment's value: no splitting, no globbing.
func literal(name string, lines *lineIndex, cfg Config, w *syntax.Word) (string, error) {
	var bad syntax.Node
	syntax.Walk(w, func(n syntax.Node) bool {
		if _, ok := n.(*syntax.ProcSubst); ok && bad == nil {
			bad = n
		}
		return true
	})
	if bad != nil {
		return "", &Error{Name: name, Pos: lines.pos(bad.Pos()), Text: "a process substitution cannot be a value here"}
	}
	unescapeLits(w, false)
	v, err := expand.Literal(&expand.Config{Env: newStageEnv(cfg.Env)}, w)
	if err != nil {
		b := &builder{name: name, lines: lines}
		return "", b.expandError(w, err)
	}
	return cutNUL(v), nil
}

// paramValues gives every parameter its value: from args, else its
// default. An unknown name or a missing required parameter is an error.
func paramValues(name string, params []Param, args []string) (map[string]string, error) {
	values := map[string]string{}
	declared := map[string]bool{}
	var names []string
	for _, p := range params {
		declared[p.Name] = true
		names = append(names, p.Name)
	}
	errf := func(format string, a ...any) error { return &Error{Name: name, Text: fmt.Sprintf(format, a...)} }
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !syntax.ValidName(k) {
			return nil, errf("%q is not a parameter: give parameters as NAME=VALUE", a)
		}
		if !declared[k] {
			if len(names) == 0 {
				return nil, errf("unknown parameter %s: the file declares none", k)
			}
			if s := suggest(k, names); s != "" {
				return nil, errf("unknown parameter %s (did you mean %s?)", k, s)
			}
			return nil, errf("unknown parameter %s (the file declares %s)", k, strings.Join(names, ", "))
		}
		if _, ok := values[k]; ok {
			return nil, errf("parameter %s is given twice", k)
		}
		values[k] = v
	}
	for _, p := range params {
		if _, ok := values[p.Name]; ok {
			continue
		}
		if p.Required {
			doc := ""
			if p.Doc != "" {
				doc = " (" + p.Doc + ")"
			}
			return nil, errf("missing parameter %s%s: give it as %s=VALUE", p.Name, doc, p.Name)
		}
		values[p.Name] = p.Default
	}
	return values, nil
}

// shellVars are the variables a shell sets itself, which a file may use
// without declaring them.
var shellVars = map[string]bool{"IFS": true, "LINENO": true, "RANDOM": true, "SECONDS": true, "PPID": true, "UID": true, "EUID": true, "GID": true, "OPTIND": true, "PWD": true, "HOME": true}

// checkParams refuses an expansion of a name that is neither a parameter
// nor in the environment, as "set -u" would, unless the expansion says
// what to do when it is unset (${x:-…}) or the file assigns it.
func checkParams(name string, lines *lineIndex, f *syntax.File, params []Param, env []string) error {
	known := map[string]bool{}
	var names []string
	for _, p := range params {
		known[p.Name] = true
		names = append(names, p.Name)
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok {
			known[k] = true
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Assign:
			if n.Name != nil {
				known[n.Name.Value] = true
			}
		case *syntax.ParamExp:
			if n.Param != nil && n.Exp != nil && (n.Exp.Op == syntax.AssignUnset || n.Exp.Op == syntax.AssignUnsetOrNull) {
				known[n.Param.Value] = true
			}
		}
		return true
	})
	var err error
	syntax.Walk(f, func(n syntax.Node) bool {
		pe, ok := n.(*syntax.ParamExp)
		if !ok || err != nil || pe.Param == nil {
			return err == nil
		}
		v := pe.Param.Value
		if known[v] || shellVars[v] || !syntax.ValidName(v) || pe.Excl || pe.Index != nil {
			return true
		}
		if pe.Exp != nil {
			switch pe.Exp.Op {
			case syntax.DefaultUnset, syntax.DefaultUnsetOrNull, syntax.AlternateUnset, syntax.AlternateUnsetOrNull,
				syntax.ErrorUnset, syntax.ErrorUnsetOrNull:
				return true
			}
		}
		text := "unknown parameter $" + v
		if s := suggest(v, names); s != "" {
			text += " (did you mean $" + s + "?)"
		} else {
			text += ": declare it (param " + v + ") or set it in the environment"
		}
		err = &Error{Name: name, Pos: lines.pos(pe.Pos()), Text: text}
		return false
	})
	return err
}

// quoteParams makes every expansion that mentions a parameter one word,
// whatever the value holds: "$p" rather than $p, which bash would split
// on blanks and glob. A value is never parsed as syntax either: expansion
// takes it as data.
func quoteParams(f *syntax.File, params []Param) {
	isParam := map[string]bool{}
	for _, p := range params {
		isParam[p.Name] = true
	}
	mentions := func(pe *syntax.ParamExp) bool {
		found := false
		syntax.Walk(pe, func(n syntax.Node) bool {
			if q, ok := n.(*syntax.ParamExp); ok && q.Param != nil && isParam[q.Param.Value] {
				found = true
			}
			return !found
		})
		return found
	}
	quote := func(w *syntax.Word) {
		if w == nil {
			return
		}
		for i, p := range w.Parts {
			if pe, ok := p.(*syntax.ParamExp); ok && mentions(pe) {
				w.Parts[i] = &syntax.DblQuoted{Left: pe.Pos(), Right: pe.End(), Parts: []syntax.WordPart{pe}}
			}
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			for _, w := range n.Args {
				quote(w)
			}
		case *syntax.Redirect:
			quote(n.Word)
		}
		return true
	})
}

// suggest is the name among names closest to s, if close enough to be a
// likely typo.
func suggest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD && d <= max(1, len(n)/3) && d < len(n) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (with adjacent
// transpositions) between a and b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// fileBuilder holds what a pipeline file adds to the builder: named
// stages and the edges to them, which are wired once every stage exists.
type fileBuilder struct {
	name   string
	lines  *lineIndex
	labels map[string]*label
	defs   map[*syntax.CallExpr]string // the command a label names → the name

	pending      []pendingEdge
	stdinReaders []end // stages that "@stdin | …" feeds
	stdoutFrom   []end // stages that feed "… | @stdout"
}

type label struct {
	pos Pos
	st  *Stage
}

type pendingEdge struct {
	e        *Edge
	from, to end
}

// findLabels takes the "NAME:" words off the commands they name.
func (fb *fileBuilder) findLabels(name string, f *syntax.File) error {
	var err error
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || err != nil || len(call.Args) == 0 {
			return err == nil
		}
		m := matchLabel(call.Args[0].Lit())
		if m == nil {
			return true
		}
		at := fb.lines.pos(call.Args[0].Pos())
		switch {
		case m[1] == refStdin || m[1] == refStdout:
			err = &Error{Name: name, Pos: at, Text: fmt.Sprintf("%s is gpipe's own: name the stage otherwise", m[1])}
		case marks["@"+m[1]] != TransportAuto:
			err = &Error{Name: name, Pos: at, Text: fmt.Sprintf("%s names a transport: name the stage otherwise", m[1])}
		case fb.labels[m[1]] != nil:
			err = &Error{Name: name, Pos: at, Text: fmt.Sprintf("stage name %s is used twice (first at %s)", m[1], fb.labels[m[1]].pos)}
		case len(call.Args) == 1:
			err = &Error{Name: name, Pos: at, Text: fmt.Sprintf("`%s:` names no command: write `%s: COMMAND…`", m[1], m[1])}
		case strings.HasPrefix(call.Args[1].Lit(), "@"):
			err = &Error{Name: name, Pos: at, Text: fmt.Sprintf("`%s:` names a command, and %s is not one: a stage has one name", m[1], call.Args[1].Lit())}
		}
		if err != nil {
			return false
		}
		fb.labels[m[1]] = &label{pos: at}
		fb.defs[call] = m[1]
		call.Args = call.Args[1:]
		return true
	})
	return err
}

// define records st as the stage its label names, if any. A label that
// brace expansion copies ("{1,2}<(a: cat)") would name two stages.
func (fb *fileBuilder) define(st *Stage, call *syntax.CallExpr) error {
	name, ok := fb.defs[call]
	if !ok {
		return nil
	}
	l := fb.labels[name]
	if l.st != nil {
		return &Error{Name: fb.name, Pos: l.pos, Text: fmt.Sprintf("stage name %s would name several stages (a brace expansion copies it)", name)}
	}
	l.st = st
	st.Label = name
	return nil
}

// transportMark reports whether s is a transport mark, "@fifo" alone.
func (fb *fileBuilder) transportMark(s *syntax.Stmt) (Transport, bool) {
	call, ok := s.Cmd.(*syntax.CallExpr)
	if !ok || len(call.Args) != 1 || len(call.Assigns) > 0 || len(s.Redirs) > 0 {
		return TransportAuto, false
	}
	t, ok := marks[call.Args[0].Lit()]
	return t, ok
}

// reference reads s as "@NAME" or "@NAME:FD", a named stage, if it is one.
func (fb *fileBuilder) reference(s *syntax.Stmt) (end, bool, error) {
	call, ok := s.Cmd.(*syntax.CallExpr)
	if !ok || len(call.Args) == 0 {
		return end{}, false, nil
	}
	w := call.Args[0]
	lit := w.Lit()
	if !strings.HasPrefix(lit, "@") {
		return end{}, false, nil
	}
	at := fb.lines.pos(w.Pos())
	errf := func(format string, a ...any) error {
		return &Error{Name: fb.name, Pos: at, Text: fmt.Sprintf(format, a...)}
	}
	if _, ok := marks[lit]; ok {
		return end{}, true, errf("a transport mark stands alone between two commands: `a | %s | b`", lit)
	}
	m := matchRef(lit)
	if m != nil && marks["@"+m[1]] != TransportAuto {
		return end{}, true, errf("a transport mark takes no descriptor: `a | @%s | b`", m[1])
	}
	if m == nil {
		return end{}, true, errf("%q is not a reference: write @NAME or @NAME:FD", lit)
	}
	if len(call.Args) > 1 || len(s.Redirs) > 0 || len(call.Assigns) > 0 {
		return end{}, true, errf("a reference to a stage takes no words or redirections: put them in the stage's definition (%s: …)", m[1])
	}
	r := end{ref: m[1], in: 0, out: 1, pos: at}
	if m[2] != "" {
		fd, err := strconv.Atoi(m[2])
		if err != nil || fd > maxFD {
			return end{}, true, errf("descriptor %s is out of range", m[2])
		}
		if m[1] == refStdin || m[1] == refStdout {
			return end{}, true, errf("@%s has no descriptors of its own", m[1])
		}
		r.in, r.out = fd, fd
	}
	if m[1] != refStdin && m[1] != refStdout && fb.labels[m[1]] == nil {
		var names []string
		for n := range fb.labels {
			names = append(names, n)
		}
		sort.Strings(names)
		if s := suggest(m[1], names); s != "" {
			return end{}, true, errf("unknown stage @%s (did you mean @%s?)", m[1], s)
		}
		if len(names) == 0 {
			return end{}, true, errf("unknown stage @%s: name a stage with `%s: COMMAND…`", m[1], m[1])
		}
		return end{}, true, errf("unknown stage @%s (the file names %s)", m[1], "@"+strings.Join(names, ", @"))
	}
	return r, true, nil
}

// pendingEdge keeps an edge with a reference at one end for resolve.
func (fb *fileBuilder) pendingEdge(e *Edge, from, to end) error {
	errf := func(at Pos, text string) error { return &Error{Name: fb.name, Pos: at, Text: text} }
	switch {
	case from.ref == refStdout:
		return errf(from.pos, "@stdout is where output goes: nothing reads from it")
	case to.ref == refStdin:
		return errf(to.pos, "@stdin is where input comes from: nothing writes to it")
	case from.ref == refStdin && to.ref == refStdout:
		return errf(from.pos, "`@stdin | @stdout` runs nothing")
	case from.ref == refStdin:
		if to.in != 0 {
			return errf(either(to.pos, from.pos), "@stdin feeds a stage's stdin only")
		}
		if to.ref == "" { // a stage of this line: placed at the @stdin
			to.pos = from.pos
		}
		fb.stdinReaders = append(fb.stdinReaders, to)
	case to.ref == refStdout:
		if from.out != 1 {
			return errf(either(from.pos, to.pos), "@stdout takes a stage's stdout only")
		}
		if from.ref == "" {
			from.pos = to.pos
		}
		fb.stdoutFrom = append(fb.stdoutFrom, from)
	default:
		fb.pending = append(fb.pending, pendingEdge{e, from, to})
	}
	return nil
}

// either is p, or q when p is no position.
func either(p, q Pos) Pos {
	if p.Line == 0 {
		return q
	}
	return p
}

// resolve wires the edges to named stages, and says where one output
// feeds several readers, or gpipe's stdin does (Graph.StdoutFrom,
// StdinReaders): the planner adds the tees there.
func (fb *fileBuilder) resolve(b *builder) error {
	stageOf := func(x end) *Stage {
		if x.st != nil {
			return x.st
		}
		return fb.labels[x.ref].st
	}
	errAt := func(at Pos, text string) error { return &Error{Name: b.name, Pos: at, Text: text} }
	// A reference to a descriptor that the stage's own definition
	// redirects would wire it twice.
	redirected := func(x end, fd int) error {
		if x.ref == "" {
			return nil
		}
		st := stageOf(x)
		for _, r := range st.Redirs {
			if r.FD == fd {
				return errAt(x.pos, fmt.Sprintf("@%s: %s is wired twice: redirected in its definition at %s, and here", x.ref, Port{FD: fd}, r.Pos))
			}
		}
		return nil
	}
	for _, p := range fb.pending {
		if err := redirected(p.from, p.from.out); err != nil {
			return err
		}
		if err := redirected(p.to, p.to.in); err != nil {
			return err
		}
		p.e.From.Stage, p.e.To.Stage = stageOf(p.from).ID, stageOf(p.to).ID
		b.g.Edges = append(b.g.Edges, p.e)
	}
	for _, x := range fb.stdoutFrom {
		if err := redirected(x, 1); err != nil {
			return err
		}
		// gpipe's stdout, even in a process substitution, whose stages
		// would otherwise share their parent's.
		stageOf(x).ownStdio[1] = true
	}
	// Fan-in is for the user to say how (merge, cat, another fd).
	type key struct{ stage, fd int }
	feeds := map[key]*Edge{}
	for _, e := range b.g.Edges {
		k := key{e.To.Stage, e.To.FD}
		if first, ok := feeds[k]; ok {
			return errAt(e.Pos, fmt.Sprintf("%s: %s is fed twice (at %s and here): join the inputs with merge or cat, or feed another descriptor (@NAME:3)",
				b.g.Stages[k.stage].Name(), e.To, first.Pos))
		}
		feeds[k] = e
	}
	byStdin := map[*Stage]Pos{}
	for _, x := range fb.stdinReaders {
		st := stageOf(x)
		if first, ok := feeds[key{st.ID, 0}]; ok {
			return errAt(x.pos, fmt.Sprintf("%s: stdin is fed twice (at %s and here)", st.Name(), first.Pos))
		}
		if first, ok := byStdin[st]; ok {
			return errAt(x.pos, fmt.Sprintf("%s: stdin is fed twice (at %s and here)", st.Name(), first))
		}
		byStdin[st] = x.pos
		if err := redirected(x, 0); err != nil {
			return err
		}
		st.ownStdio[0] = true
	}
	// Fan-out (several edges from one port), an output that gpipe's
	// stdout gets too, and gpipe's stdin read by several stages are the
	// planner's to copy (stage.AddRelays); the graph says which.
	for _, x := range fb.stdoutFrom {
		b.g.StdoutFrom = append(b.g.StdoutFrom, Port{Stage: stageOf(x).ID, FD: 1})
	}
	if len(fb.stdinReaders) > 1 {
		for _, x := range fb.stdinReaders {
			b.g.StdinReaders = append(b.g.StdinReaders, &Edge{From: Port{Stage: -1}, To: Port{Stage: stageOf(x).ID, FD: 0}, Pos: x.pos})
		}
	}
	return fb.parCommands(b)
}

// parCommands reads "par [OPTION]... @NAME" as par running the named
// stage's command in its copies: its words (after "--"), assignments and
// redirections become the par stage's, and the named stage, a definition
// only, is no stage of its own. It must be wired nowhere else.
func (fb *fileBuilder) parCommands(b *builder) error {
	g := b.g
	for _, st := range append([]*Stage(nil), g.Stages...) {
		n := len(st.Args)
		if n < 2 || st.Args[0] != "par" || !strings.HasPrefix(st.Args[n-1], "@") {
			continue
		}
		name := st.Args[n-1][1:]
		l := fb.labels[name]
		if l == nil || l.st == nil {
			continue // not a name of this file: the word it is
		}
		def := l.st
		errAt := func(text string) error {
			return &Error{Name: b.name, Pos: st.Pos, Text: fmt.Sprintf("par @%s: %s", name, text)}
		}
		switch {
		case def == st:
			return errAt("a par stage cannot run itself")
		case def.Parent != nil || len(def.Args) == 0:
			return errAt(fmt.Sprintf("the stage named at %s must be a command on a line of its own", l.pos))
		}
		for _, e := range g.Edges {
			if e.From.Stage == def.ID || e.To.Stage == def.ID {
				return errAt(fmt.Sprintf("its copies run the command named at %s, which is also wired at %s: name two stages", l.pos, e.Pos))
			}
		}
		for _, p := range g.StdoutFrom {
			if p.Stage == def.ID {
				return errAt(fmt.Sprintf("its copies run the command named at %s, which also writes gpipe's stdout: name two stages", l.pos))
			}
		}
		for _, e := range g.StdinReaders {
			if e.To.Stage == def.ID {
				return errAt(fmt.Sprintf("its copies run the command named at %s, which also reads gpipe's stdin: name two stages", l.pos))
			}
		}
		words := st.Args[:n-1]
		if words[len(words)-1] != "--" {
			words = append(words, "--")
		}
		st.Args = append(append([]string(nil), words...), def.Args...)
		st.Env = append(st.Env, def.Env...)
		st.Redirs = append(st.Redirs, def.Redirs...)
		removeStage(g, def.ID)
	}
	return nil
}

// removeStage takes stage id, wired to nothing, out of g, and numbers the
// stages after it down.
func removeStage(g *Graph, id int) {
	g.Stages = append(g.Stages[:id], g.Stages[id+1:]...)
	for _, st := range g.Stages[id:] {
		st.ID--
	}
	down := func(i int) int {
		if i > id {
			return i - 1
		}
		return i
	}
	for _, e := range g.Edges {
		e.From.Stage, e.To.Stage = down(e.From.Stage), down(e.To.Stage)
	}
	for i := range g.StdoutFrom {
		g.StdoutFrom[i].Stage = down(g.StdoutFrom[i].Stage)
	}
	for _, e := range g.StdinReaders {
		e.To.Stage = down(e.To.Stage)
	}
	for _, st := range g.Stages {
		for i := range st.Inherits {
			st.Inherits[i].From.Stage = down(st.Inherits[i].From.Stage)
		}
	}
}

// matchLabel matches a stage's label, `^([A-Za-z_][A-Za-z0-9_]*):$`, and
// returns the submatches as regexp's FindStringSubmatch would: the whole
// and the name, or nil. (Not a regexp: one compiled at start-up cost every
// run of gpipe, and of its guardian and helpers, its compilation.)
func matchLabel(s string) []string {
	name, ok := strings.CutSuffix(s, ":")
	if !ok || !isName(name) {
		return nil
	}
	return []string{s, name}
}

// matchRef matches a reference, `^@([A-Za-z_][A-Za-z0-9_]*)(?::([0-9]+))?$`,
// and returns the submatches as regexp's FindStringSubmatch would: the
// whole, the name and the descriptor ("" when there is none), or nil.
func matchRef(s string) []string {
	rest, ok := strings.CutPrefix(s, "@")
	if !ok {
		return nil
	}
	name, fd, hasFD := strings.Cut(rest, ":")
	if !isName(name) || (hasFD && !isDigits(fd)) {
		return nil
	}
	return []string{s, name, fd}
}

// isName reports whether s is `[A-Za-z_][A-Za-z0-9_]*`.
func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// isDigits reports whether s is `[0-9]+`.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
