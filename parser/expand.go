package parser

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// stage expands one simple command the way bash does inside a pipeline's
// subshell: words and redirection targets see the inherited environment,
// then the assignments are made left to right, each seeing the ones before.
// Expansions that assign (${x:=y}) touch only this stage's copy.
//
// The stage's arguments and assignments may not take more than argMax
// bytes, nor more than is left of pipelineArgMax: a word that could go over
// is refused before it is expanded, and one that does go over as it is.
//
// A process substitution among the words becomes stages and an edge to st
// (see procSubst), in the order bash forks them: the words left to right,
// then the redirections.
func (b *builder) stage(st *Stage, s *syntax.Stmt, call *syntax.CallExpr) error {
	env := newStageEnv(b.cfg.Env)
	nextFD := firstProcSubstFD
	cfg := &expand.Config{Env: env, ReadDir2: b.cfg.ReadDir, ProcSubst: func(ps *syntax.ProcSubst) (string, error) {
		return b.procSubst(st, &nextFD, ps)
	}}
	// What the stage may take: argMax, unless less is left of the
	// pipeline's budget, which then names the error.
	budget := min(argMax, b.left)
	overText, boundText := tooLong, couldBeLong
	if budget < argMax {
		overText, boundText = pipelineTooLong, pipelineCouldBeLong
	}
	left := budget
	// settle charges the pipeline's budget with what the stage took since
	// the last call, before a process substitution's stages take from it,
	// and after: the stage may then take no more than they left.
	settle := func() {
		b.left -= budget - max(left, 0)
		budget = max(left, 0)
		if b.left < budget {
			budget, left = b.left, b.left
			overText, boundText = pipelineTooLong, pipelineCouldBeLong
		}
	}
	defer settle()

	var assigns []*syntax.Assign
	var args []*syntax.Word
	if call != nil {
		assigns, args = splitAssigns(call)
		for _, w := range args {
			assignTildes(cfg, w, false)
			unescapeParams(w.Parts, false)
			z := newSizer(env, left)
			if err := b.fits(z, z.fields(w), w, boundText); err != nil {
				return err
			}
			unquoted := !hasQuotes(w)
			settle()
			for field, err := range expand.FieldsSeq(cfg, w) {
				settle()
				if err != nil {
					return b.expandError(w, err)
				}
				if unquoted && field == "" {
					// bash removes an empty field of a word with no
					// quotes in it, such as the first alternative of
					// {,x}; the expander keeps it.
					continue
				}
				field = cutNUL(field)
				if left -= argCost(len(field)); left < 0 {
					return b.errorf(w.Pos(), overText)
				}
				st.Args = append(st.Args, field)
			}
		}
	}
	for _, r := range s.Redirs {
		settle()
		rs, err := b.redirect(cfg, env, left, boundText, r)
		settle()
		if err != nil {
			return err
		}
		st.Redirs = append(st.Redirs, rs...)
	}
	if call != nil {
		for _, a := range assigns {
			name := a.Name.Value
			if a.Naked {
				// "X" alone as an assignment only happens in declarations,
				// which are refused; keep the variable as it is.
				continue
			}
			value := ""
			if a.Value != nil {
				unescapeLits(a.Value, false)
				assignTildes(cfg, a.Value, true)
				unescapeParams(a.Value.Parts, false)
				z := newSizer(env, left)
				n := z.word(a.Value)
				if a.Append {
					n += z.varBytes(name)
				}
				if err := b.fits(z, n, a.Value, boundText); err != nil {
					return err
				}
				settle()
				v, err := expand.Literal(cfg, a.Value)
				settle()
				if err != nil {
					return b.expandError(a.Value, err)
				}
				value = cutNUL(v)
			}
			if a.Append {
				value = env.Get(name).String() + value
			}
			if left -= argCost(len(name) + 1 + len(value)); left < 0 {
				return b.errorf(a.Pos(), overText)
			}
			env.set(name, value)
			st.Env = append(st.Env, name+"="+value)
		}
	}
	return nil
}

// splitAssigns returns the assignments of call and its words. The shell
// parser takes "0=x" for an assignment, but bash reads a NAME=value whose
// name is not an identifier as a word, the command name, and the
// assignments after it as arguments: so does gpipe.
func splitAssigns(call *syntax.CallExpr) ([]*syntax.Assign, []*syntax.Word) {
	for i, a := range call.Assigns {
		if a.Name == nil || syntax.ValidName(a.Name.Value) {
			continue
		}
		var words []*syntax.Word
		for _, a := range call.Assigns[i:] {
			words = append(words, assignWord(a))
		}
		return call.Assigns[:i], append(words, call.Args...)
	}
	return call.Assigns, call.Args
}

// assignWord is assignment a written as a word.
func assignWord(a *syntax.Assign) *syntax.Word {
	op := "="
	if a.Append {
		op = "+="
	}
	if a.Naked {
		op = ""
	}
	w := &syntax.Word{Parts: []syntax.WordPart{&syntax.Lit{ValuePos: a.Pos(), ValueEnd: a.Pos(), Value: a.Name.Value + op}}}
	if a.Value != nil {
		w.Parts = append(w.Parts, a.Value.Parts...)
	}
	return w
}

// fits refuses w with text if the bound n of its expansion is over the
// sizer's limit, at the construct that went over.
func (b *builder) fits(z *sizer, n int64, w *syntax.Word, text string) error {
	if z.slowAt.IsValid() {
		return b.errorf(z.slowAt, tooSlow)
	}
	if !z.over && n <= z.limit {
		return nil
	}
	at := z.at
	if !z.over || !at.IsValid() {
		at = w.Pos()
	}
	return b.errorf(at, text)
}

// expandError turns an error of the expand package for word w into an
// *Error, positioned at the parameter expansion it comes from when known.
func (b *builder) expandError(w *syntax.Word, err error) error {
	var own *Error
	if errors.As(err, &own) {
		return own // from a process substitution's pipeline
	}
	var unset expand.UnsetParameterError
	if errors.As(err, &unset) && unset.Node != nil && unset.Node.Param != nil {
		text := unset.Message
		if text == "" {
			// bash's words for ${x?} and ${x:?}.
			text = "parameter not set"
			if unset.Node.Exp != nil && unset.Node.Exp.Op == syntax.ErrorUnsetOrNull {
				text = "parameter null or not set"
			}
		}
		return b.errorf(unset.Node.Pos(), unset.Node.Param.Value+": "+text)
	}
	return b.errorf(w.Pos(), err.Error())
}

// unescapeLits makes the backslash escapes in the unquoted literal parts of
// w explicit, for the words that mvdan.cc/sh/v3/expand expands as one string
// (expand.Literal): unlike expand.Fields, it keeps a backslash written
// outside quotes, so "A=a\ b" would give A="a\ b" where bash gives "a b".
// Each escaped character becomes a single-quoted part of its own, which is
// what the escape means; in a double-quoted context (the word of
// "${x:-word}"), only \$ \` \" and \\ are escapes, as in bash. A
// backslash-newline is removed; a lone backslash at the end stays.
func unescapeLits(w *syntax.Word, dquote bool) {
	if w == nil {
		return
	}
	var parts []syntax.WordPart
	changed := false
	for _, p := range w.Parts {
		lit, ok := p.(*syntax.Lit)
		if !ok || !strings.Contains(lit.Value, "\\") {
			parts = append(parts, p)
			continue
		}
		changed = true
		v := lit.Value
		var cur strings.Builder
		flush := func() {
			if cur.Len() > 0 {
				parts = append(parts, &syntax.Lit{ValuePos: lit.ValuePos, ValueEnd: lit.ValueEnd, Value: cur.String()})
				cur.Reset()
			}
		}
		for i := 0; i < len(v); i++ {
			if v[i] != '\\' || i+1 == len(v) {
				cur.WriteByte(v[i])
				continue
			}
			_, size := utf8.DecodeRuneInString(v[i+1:])
			next := v[i+1 : i+1+size]
			switch {
			case next == "\n":
			case dquote && !strings.Contains("$`\"\\", next):
				cur.WriteString(v[i : i+1+size])
			default:
				flush()
				parts = append(parts, &syntax.SglQuoted{Left: lit.ValuePos, Right: lit.ValueEnd, Value: next})
			}
			i += size
		}
		flush()
	}
	if changed {
		w.Parts = parts
	}
}

// unescapeParams applies unescapeLits to the words inside the parameter
// expansions among parts that expand.Literal expands: ${x:-word}, the
// replacement of ${x/pattern/word}, at any depth. dquote says whether parts
// are inside double quotes. Patterns need nothing: a backslash escapes in a
// pattern as it does in the shell.
func unescapeParams(parts []syntax.WordPart, dquote bool) {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.DblQuoted:
			unescapeParams(p.Parts, true)
		case *syntax.ParamExp:
			if p.Exp != nil && p.Exp.Word != nil {
				unescapeLits(p.Exp.Word, dquote)
				unescapeParams(p.Exp.Word.Parts, dquote)
			}
			if p.Repl != nil {
				if p.Repl.Orig != nil {
					unescapeParams(p.Repl.Orig.Parts, dquote)
				}
				if p.Repl.With != nil {
					// bash removes every backslash escape of the
					// replacement, even inside double quotes.
					unescapeLits(p.Repl.With, false)
					unescapeParams(p.Repl.With.Parts, dquote)
				}
			}
		}
	}
}

// cutNUL ends s at its first NUL byte, as bash's C strings do: no
// argument, environment string or path can hold one.
func cutNUL(s string) string {
	s, _, _ = strings.Cut(s, "\x00")
	return s
}

// redirect expands one redirection into its bash meaning. left is what is
// left of the stage's budget, which bounds the target's expansion, and
// boundText the error should it not.
func (b *builder) redirect(cfg *expand.Config, env *stageEnv, left int64, boundText string, r *syntax.Redirect) ([]Redirect, error) {
	fd := -1
	if r.N != nil {
		n, err := strconv.Atoi(r.N.Value)
		if err != nil {
			return nil, b.errorf(r.Pos(), "bad file descriptor "+r.N.Value)
		}
		fd = n
	}
	if r.Op == syntax.DplIn || r.Op == syntax.DplOut {
		if err := b.dashWord(r); err != nil {
			return nil, err
		}
	}
	unescapeParams(r.Word.Parts, false)
	z := newSizer(env, left)
	if err := b.fits(z, z.fields(r.Word), r.Word, boundText); err != nil {
		return nil, err
	}
	var fields []string
	for field, err := range expand.FieldsSeq(cfg, r.Word) {
		if err != nil {
			return nil, b.expandError(r.Word, err)
		}
		if fields = append(fields, cutNUL(field)); len(fields) > 1 {
			break
		}
	}
	if len(fields) != 1 {
		// bash names the word as written: "$F: ambiguous redirect".
		return nil, b.errorf(r.Word.Pos(), printWord(r.Word)+": ambiguous redirect")
	}
	target := fields[0]
	at := b.lines.pos(r.Pos())
	file := func(op RedirOp, defFD int) []Redirect {
		if fd < 0 {
			fd = defFD
		}
		return []Redirect{{Pos: at, FD: fd, Op: op, Path: target}}
	}
	switch r.Op {
	case syntax.RdrIn:
		return file(RedirRead, 0), nil
	case syntax.RdrOut, syntax.RdrClob:
		return file(RedirWrite, 1), nil
	case syntax.AppOut:
		return file(RedirAppend, 1), nil
	case syntax.RdrInOut:
		return file(RedirReadWrite, 0), nil
	case syntax.RdrAll, syntax.AppAll:
		op := RedirWrite
		if r.Op == syntax.AppAll {
			op = RedirAppend
		}
		return []Redirect{
			{Pos: at, FD: 1, Op: op, Path: target},
			{Pos: at, FD: 2, Op: RedirDup, DupFD: 1},
		}, nil
	case syntax.DplIn, syntax.DplOut:
		def := 0
		if r.Op == syntax.DplOut {
			def = 1
		}
		if fd < 0 {
			fd = def
		}
		if target == "-" {
			return []Redirect{{Pos: at, FD: fd, Op: RedirClose}}, nil
		}
		move := false
		num := target
		if len(num) > 1 && num[len(num)-1] == '-' {
			move, num = true, num[:len(num)-1]
		}
		if !allDigits(num) {
			if r.Op == syntax.DplOut && r.N == nil {
				// bash reads ">&word" as "&>word" when word is not a number.
				return []Redirect{
					{Pos: at, FD: 1, Op: RedirWrite, Path: target},
					{Pos: at, FD: 2, Op: RedirDup, DupFD: 1},
				}, nil
			}
			return nil, b.errorf(r.Word.Pos(), target+": ambiguous redirect")
		}
		src, err := strconv.Atoi(num)
		if err != nil || src > maxFD {
			return nil, b.errorf(r.Word.Pos(), "file descriptor "+num+" is out of range")
		}
		rs := []Redirect{{Pos: at, FD: fd, Op: RedirDup, DupFD: src}}
		if move && src != fd {
			// "n>&m-" moves m to n; moving a descriptor onto itself
			// leaves it open, as in bash.
			rs = append(rs, Redirect{Pos: at, FD: src, Op: RedirClose})
		}
		return rs, nil
	}
	return nil, b.errorf(r.Pos(), "redirection `"+r.Op.String()+"` is not supported")
}

// maxFD is the largest descriptor number a redirection may name: bash reads
// a larger number before a redirection operator as an ordinary word.
const maxFD = math.MaxInt32

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// dashWord refuses ">&-x": bash's lexer reads ">&-" as one operator, so
// the descriptor is closed and "x" becomes an argument of the command, which
// the syntax tree cannot express. A quoted "-x" is a file name, as in bash.
func (b *builder) dashWord(r *syntax.Redirect) error {
	lit, ok := r.Word.Parts[0].(*syntax.Lit)
	if !ok || !strings.HasPrefix(lit.Value, "-") || (lit.Value == "-" && len(r.Word.Parts) == 1) {
		return nil
	}
	op := r.Op.String()
	if r.N != nil {
		op = r.N.Value + op
	}
	word := printWord(r.Word)
	return b.errorf(r.Pos(), "bash reads `"+op+word+"` as `"+op+"-` followed by the argument `"+word[1:]+
		"`; write `"+op+"- "+word[1:]+"` if that is what you mean, or quote the file name")
}

// printWord is w as written, give or take the spacing.
func printWord(w *syntax.Word) string {
	var sb strings.Builder
	if err := syntax.NewPrinter().Print(&sb, w); err != nil {
		return "word"
	}
	return sb.String()
}

// stageEnv is a stage's private, writable view of the environment.
type stageEnv struct {
	base expand.Environ
	own  map[string]expand.Variable
}

// newStageEnv starts from pairs, each cut at a NUL byte should it hold one.
func newStageEnv(pairs []string) *stageEnv {
	clean := make([]string, len(pairs))
	for i, p := range pairs {
		clean[i] = cutNUL(p)
	}
	return &stageEnv{base: expand.ListEnviron(clean...), own: map[string]expand.Variable{}}
}

// noPositional is what $@, $* and $# see: gpipe, like "bash -c SPEC" with
// no further arguments, has no positional parameters, so "$@" expands to no
// word at all rather than to one empty word.
var noPositional = map[string]expand.Variable{
	"@": {Set: true, Kind: expand.Indexed, List: []string{}}, // non-nil: no word
	"*": {Set: true, Kind: expand.Indexed, List: []string{}},
	"#": {Set: true, Kind: expand.String, Str: "0"},
}

func (e *stageEnv) Get(name string) expand.Variable {
	if v, ok := noPositional[name]; ok {
		return v
	}
	if v, ok := e.own[name]; ok {
		return v
	}
	return e.base.Get(name)
}

func (e *stageEnv) Each(f func(string, expand.Variable) bool) {
	e.base.Each(func(name string, v expand.Variable) bool {
		if _, ok := e.own[name]; ok {
			return true
		}
		return f(name, v)
	})
	for name, v := range e.own {
		if v.IsSet() && !f(name, v) {
			return
		}
	}
}

// Set is how expansions assign (${x:=y}, $((x=1))); like bash, it cuts a
// value at its first NUL byte (${x@E} can make one).
func (e *stageEnv) Set(name string, v expand.Variable) error {
	v.Str = cutNUL(v.Str)
	e.own[name] = v
	return nil
}

func (e *stageEnv) set(name, value string) {
	e.own[name] = expand.Variable{Set: true, Exported: true, Kind: expand.String, Str: value}
}

// hasQuotes reports whether any part of w, nested ones included
// (${U:-""}), is quoted: only such a word can expand to an empty field that
// bash keeps.
func hasQuotes(w *syntax.Word) bool {
	quoted := false
	syntax.Walk(w, func(n syntax.Node) bool {
		switch n.(type) {
		case *syntax.SglQuoted, *syntax.DblQuoted:
			quoted = true
		}
		return !quoted
	})
	return quoted
}
