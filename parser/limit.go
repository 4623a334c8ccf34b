package parser

import (
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// argMax is the most bytes a stage's own arguments and assignments may
// take, counted as the kernel counts them for execve: every string with its
// NUL terminator and its pointer. It is Linux's ARG_MAX with the default
// 8 MiB stack; beyond it bash fails with "Argument list too long". The
// inherited environment is not counted: the parser does not know it.
const argMax = 2 << 20

// pipelineArgMax bounds the arguments and assignments of all the stages
// together. The kernel has no such limit, but gpipe holds every stage's
// arguments at once, and a few bytes of spec per stage can each reach
// argMax (a 128 KiB spec, one argument, could otherwise ask for gigabytes).
// It leaves room for 16 stages at argMax.
const pipelineArgMax = 16 * argMax

// argCost is what one argument or environment string of n bytes costs
// against argMax: the bytes, the NUL and the pointer.
func argCost(n int) int64 { return int64(n) + 1 + 8 }

const (
	tooLong             = "argument list too long: more than 2 MiB (ARG_MAX)"
	couldBeLong         = "expansion could make the argument list too long: more than 2 MiB (ARG_MAX)"
	pipelineTooLong     = "the stages' arguments together are too long: more than 32 MiB"
	pipelineCouldBeLong = "expansion could make the stages' arguments together too long: more than 32 MiB"

	numberBytes = 20 // the longest decimal int64, "-9223372036854775808"
	// procSubstPathBytes bounds the path a process substitution expands
	// to: "/dev/fd/63" today, a FIFO path in a private directory later.
	procSubstPathBytes = 256
	homeDirBytes       = 4096 // PATH_MAX, for ~user looked up in the user database
)

// sizer bounds from above the bytes a word expands to, without building
// anything, so that a word which could exceed argMax is refused before the
// expansion allocates it: a chain like A=xx B=$A$A C=$B$B … doubles with
// every few bytes of source, and ${x//?/$x} squares.
//
// It mirrors the evaluation order of mvdan.cc/sh/v3/expand, including the
// variables that the word itself assigns (${x:=…}, $((x=…))). It relies on
// checkSupported having refused command and process substitution and the
// expansions that would create arrays (${a[i]=…}), so that every variable is
// a string and every node is evaluated once per evaluation of its parent.
type sizer struct {
	env   *stageEnv
	vars  map[string]int64 // bounds of the variables the word assigns
	limit int64            // the bytes left in the stage's budget
	at    syntax.Pos       // where a bound first went over limit
	over  bool

	work   int64      // bound of the pattern-matching steps of the word
	slowAt syntax.Pos // where work first went over matchWorkMax
}

// matchWorkMax bounds the steps (value bytes times pattern bytes) the
// pattern operations of one word may take: the expander matches a pattern
// at every position of the value, so ${z/$z} on a 20 KB value takes
// seconds, and a few more bytes of spec take hours. bash would grind
// through it; gpipe refuses it before starting anything.
const matchWorkMax = 1 << 26

const tooSlow = "pattern matching too costly: a long pattern over a long value (more than 64M steps)"

// matching adds the steps of matching a pattern of pat bytes over a value of
// val bytes.
func (z *sizer) matching(val, pat int64, at syntax.Pos) {
	z.work += min(val+1, matchWorkMax) * min(pat+1, matchWorkMax)
	if z.work > matchWorkMax && !z.slowAt.IsValid() {
		z.slowAt = at
	}
	z.work = min(z.work, matchWorkMax+1)
}

func newSizer(env *stageEnv, limit int64) *sizer {
	return &sizer{env: env, vars: map[string]int64{}, limit: limit}
}

// check records at as the culprit if n is over the limit, and returns n
// capped just above the limit, so that sums and products of bounds stay far
// from overflowing.
func (z *sizer) check(n int64, at syntax.Pos) int64 {
	if n > z.limit {
		if !z.over {
			z.over, z.at = true, at
		}
		return z.limit + 1
	}
	return n
}

// fields bounds the bytes of all the fields of a command argument or a
// redirection target, after brace expansion.
func (z *sizer) fields(w *syntax.Word) int64 {
	word := *w
	if !syntax.SplitBraces(&word) {
		return z.check(z.topParts(word.Parts), w.Pos())
	}
	var n int64
	// The same sequence expand.FieldsSeq walks, with the same cap: beyond
	// it, expand stops with an error of its own.
	for bw, err := range expand.BracesSeq(nil, &word) {
		if err != nil || z.over {
			break
		}
		n = z.check(n+z.topParts(bw.Parts), w.Pos())
	}
	return n
}

// topParts is parts for the parts of a top-level word, where expand
// evaluates a lone "${@…}" or "${a[@]…}" inside double quotes twice.
func (z *sizer) topParts(ps []syntax.WordPart) int64 {
	var n int64
	for i, p := range ps {
		if dq, ok := p.(*syntax.DblQuoted); ok && len(dq.Parts) == 1 {
			if pe, ok := dq.Parts[0].(*syntax.ParamExp); ok && listParam(pe) {
				n += z.param(pe)
			}
		}
		n += z.part(p, i == 0)
	}
	return n
}

// listParam says whether pe names a list: $@, $*, ${a[@]}, ${a[*]}.
func listParam(pe *syntax.ParamExp) bool {
	if pe.Param != nil && (pe.Param.Value == "@" || pe.Param.Value == "*") {
		return true
	}
	if w, ok := pe.Index.(*syntax.Word); ok {
		lit := w.Lit()
		return lit == "@" || lit == "*"
	}
	return false
}

// word bounds a word expanded as one string, as in an assignment.
func (z *sizer) word(w *syntax.Word) int64 {
	if w == nil || len(w.Parts) == 0 {
		return 0
	}
	var n int64
	for i, p := range w.Parts {
		n += z.part(p, i == 0)
	}
	return z.check(n, w.Pos())
}

func (z *sizer) part(p syntax.WordPart, first bool) int64 {
	switch p := p.(type) {
	case *syntax.Lit:
		n := int64(len(p.Value))
		if first && len(p.Value) > 0 && p.Value[0] == '~' {
			n += z.maxVar() + homeDirBytes
		}
		return n
	case *syntax.SglQuoted:
		// $'…' escapes never expand to more bytes than they are written in.
		return int64(len(p.Value))
	case *syntax.DblQuoted:
		var n int64
		for _, q := range p.Parts {
			n += z.part(q, false)
		}
		return z.check(n, p.Pos())
	case *syntax.ParamExp:
		return z.param(p)
	case *syntax.ArithmExp:
		z.arith(p.X)
		return numberBytes
	case *syntax.ExtGlob:
		return int64(len(p.Op.String()) + len(p.Pattern.Value) + 1)
	case *syntax.ProcSubst:
		return procSubstPathBytes
	}
	// Command substitutions are refused before expansion.
	return 0
}

// param bounds a parameter expansion. Every sub-word is walked, evaluated
// or not, since walking one only ever raises a bound.
func (z *sizer) param(pe *syntax.ParamExp) int64 {
	if pe.Param == nil {
		return 0
	}
	name := pe.Param.Value
	if pe.Slice != nil {
		z.arith(pe.Slice.Offset)
		z.arith(pe.Slice.Length)
	}
	z.arith(pe.Index)
	val := z.varBytes(name)
	if name == "LINENO" {
		val = numberBytes
	}
	var n int64
	switch {
	case pe.Length:
		n = numberBytes
	case pe.Excl:
		// ${!x}, ${!prefix*}, ${!a[@]}: another variable, the names, or
		// the indexes.
		n = z.maxVar() + z.names() + (numberBytes+1)*val
	case pe.Slice != nil:
		// Slicing goes through []rune: an invalid byte becomes U+FFFD.
		n = 3 * val
	case pe.Repl != nil:
		z.matching(val, z.word(pe.Repl.Orig), pe.Pos())
		with := z.word(pe.Repl.With)
		// Every byte and the end can match, each replaced by with.
		n = val + (val+1)*with
	case pe.Exp != nil:
		arg := z.word(pe.Exp.Word)
		switch pe.Exp.Op {
		case syntax.AssignUnset, syntax.AssignUnsetOrNull:
			// Assigns arg only if the variable is unset or empty.
			z.setVar(name, max(val, arg), pe.Pos())
			n = val + arg
		case syntax.RemSmallPrefix, syntax.RemLargePrefix,
			syntax.RemSmallSuffix, syntax.RemLargeSuffix:
			z.matching(val, arg, pe.Pos())
			n = val
		case syntax.UpperFirst, syntax.UpperAll,
			syntax.LowerFirst, syntax.LowerAll:
			// Each character is matched against the pattern.
			z.matching(val, arg, pe.Pos())
			n = 3 * val // through []rune, as above
		case syntax.OtherParamOps:
			// ${x@Q} writes a byte as \xNN; ${x@A} adds "declare -… x=".
			n = 4*val + int64(len(name)) + 32
		default:
			n = val + arg
		}
	default:
		n = val
	}
	return z.check(n, pe.Pos())
}

// arith walks an arithmetic expression for what it assigns and for the words
// it expands; its own result is a number.
func (z *sizer) arith(x syntax.ArithmExpr) {
	switch x := x.(type) {
	case *syntax.Word:
		z.word(x)
	case *syntax.ParenArithm:
		z.arith(x.X)
	case *syntax.UnaryArithm:
		if x.Op == syntax.Inc || x.Op == syntax.Dec {
			if w, ok := x.X.(*syntax.Word); ok {
				z.setNumber(w)
			}
			return
		}
		z.arith(x.X)
	case *syntax.BinaryArithm:
		switch x.Op {
		case syntax.Assgn, syntax.AddAssgn, syntax.SubAssgn,
			syntax.MulAssgn, syntax.QuoAssgn, syntax.RemAssgn,
			syntax.AndAssgn, syntax.OrAssgn, syntax.XorAssgn,
			syntax.ShlAssgn, syntax.ShrAssgn:
			z.arith(x.Y)
			if w, ok := x.X.(*syntax.Word); ok {
				z.setNumber(w)
			}
			return
		}
		z.arith(x.X)
		z.arith(x.Y)
	}
}

func (z *sizer) setNumber(w *syntax.Word) {
	name := w.Lit()
	z.setVar(name, max(z.varBytes(name), numberBytes), w.Pos())
}

func (z *sizer) setVar(name string, n int64, at syntax.Pos) {
	z.vars[name] = z.check(n, at)
}

// varBytes bounds the value of a variable: all its elements, each with a
// separator, should it be a list.
func (z *sizer) varBytes(name string) int64 {
	if n, ok := z.vars[name]; ok {
		return n
	}
	return valueBytes(z.env.Get(name))
}

func valueBytes(v expand.Variable) int64 {
	n := int64(len(v.Str))
	for _, s := range v.List {
		n += int64(len(s)) + 1
	}
	for k, s := range v.Map {
		n += int64(len(k)+len(s)) + 2
	}
	return n
}

// maxVar bounds the value of any variable, for ${!x} and ~.
func (z *sizer) maxVar() int64 {
	var n int64
	z.env.Each(func(_ string, v expand.Variable) bool {
		n = max(n, valueBytes(v))
		return true
	})
	for _, m := range z.vars {
		n = max(n, m)
	}
	return n
}

// names bounds the names of all variables joined, for ${!prefix*}.
func (z *sizer) names() int64 {
	var n int64
	z.env.Each(func(name string, _ expand.Variable) bool {
		n += int64(len(name)) + 1
		return true
	})
	for name := range z.vars {
		n += int64(len(name)) + 1
	}
	return n
}
