package parser

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"mvdan.cc/sh/v3/syntax"
)

// parseHang is how long one parse may take in FuzzParse before it counts
// as a hang: far beyond any sane spec, even under -race on a loaded machine.
const parseHang = 20 * time.Second

// FuzzParse checks, for any source, that Parse either refuses it with a
// positioned *Error or returns a well-formed graph, and that a spec printed
// back by the shell printer parses to the same stages and edges.
func FuzzParse(f *testing.F) {
	for _, src := range []string{
		"seq 1 100 | grep 7 | wc -l",
		"A=1 B=$A cmd $A | tr a-z A-Z > out 2>&1",
		`echo 'a b' "c $X" d\ e ${X:-def} ${#X} ${X/x/z} $((N * 2)) {a,b}{1..3} ~/f`,
		"cat < in 3<>rw 4>&1- >&- &>> log |& tee >| f",
		"make && ls | wc -l",
		"a | b; c",
		"echo ${x:=aa}${y:=$x$x}${z:=${y//?/$y}}",
		"echo {1..999999999}",
		"echo $((1/0)) ${u:?unset}",
		"echo > $X",
		"X=1 | > f | b",
		"echo $LINENO |\n\n echo ${LINENO} \\\n $LINENO",
	} {
		f.Add(src)
	}
	cfg := Config{Env: testEnv}
	f.Fuzz(func(t *testing.T, src string) {
		// A parse that hangs crashes the worker with its input, which the
		// fuzzer then saves: without this, a hang only ends the fuzzing
		// run at its time limit, input unknown.
		hang := time.AfterFunc(parseHang, func() {
			panic(fmt.Sprintf("Parse(%q) still running after %v", src, parseHang))
		})
		defer hang.Stop()
		g, err := Parse("spec", src, cfg)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error is %T, not *Error: %v", src, err, err)
			}
			if pe.Name != "spec" || pe.Text == "" {
				t.Fatalf("Parse(%q) error %#v: want name spec and a text", src, pe)
			}
			checkPos(t, src, "error", pe.Pos)
			return
		}
		checkGraph(t, src, g)

		file, err := syntax.NewParser(syntax.Variant(syntax.LangBash), syntax.KeepComments(true)).Parse(strings.NewReader(src), "spec")
		if err != nil {
			t.Fatalf("Parse(%q) accepted what the shell parser refuses: %v", src, err)
		}
		var printed strings.Builder
		if err := syntax.NewPrinter().Print(&printed, printable(file)); err != nil {
			t.Fatalf("print %q: %v", src, err)
		}
		if hasProcSubst(file) {
			// The printer does not keep process substitutions where they
			// are: it puts a blank before one inside a word, making two
			// words of one ("<(a)>(b)", "<(0)0>(0)", "<0>(0)"), and moves
			// a redirection's after the arguments ("a ><(0) >(0)"), which
			// renumbers the stages. Its output may then be another spec,
			// even one gpipe rightly refuses: "<$0>(0)", one redirection
			// to the word $0/dev/fd/63, prints as "<$0 >(0)", whose "<$0"
			// is an ambiguous redirect once $0 is empty. The fuzzer keeps
			// finding new cases of the printer's, not the parser's.
			return
		}
		if breaksComments(file) {
			// The printer ends a comment at a form feed (or a vertical
			// tab, or a carriage return) and prints the rest of it as
			// commands on the next line: "0 #\f܊" prints as "0 #\n܊".
			return
		}
		if _, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(printed.String()), "spec"); err != nil {
			// The printer wrote what its own parser refuses: its bug,
			// not gpipe's ("${0::0$ *(0)}" prints as "${0::0$*(0)}",
			// where "$*" is another thing).
			return
		}
		g2, err := Parse("spec", printed.String(), cfg)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but its printed form %q is refused: %v", src, printed.String(), err)
		}
		if usesLineno(file) {
			// $LINENO expands to a line number, a position, which the
			// printer need not keep: it drops blank lines and line
			// continuations. The stages are the same but for it.
			return
		}
		if a, b := graphText(g), graphText(g2); a != b {
			t.Fatalf("Parse(%q) and Parse of its printed form %q differ:\n%s\n---\n%s", src, printed.String(), short(a), short(b))
		}
	})
}

// printable rewrites f, keeping its meaning, where syntax.Printer would
// print something else than f:
//
//   - every form feed and vertical tab in its words and comments gets
//     bracketed by tabwriter.Escape. The printer writes through
//     text/tabwriter, which otherwise reads those bytes as layout even
//     inside a word ("a\vb" prints as "a b", "a\fb" as "a\nb"); escaped,
//     they pass through as written. A literal with a tab needs no help: the
//     printer escapes all of it itself;
//   - the offset of a slice, and a prefix operator's operand that has one
//     too, get parentheses: the printer writes "${x: -1}" as "${x:-1}", a
//     default value, and "- -x" as "--x", a decrement.
func printable(f *syntax.File) *syntax.File {
	esc := func(s string) string {
		if !strings.ContainsAny(s, "\f\v") || strings.Contains(s, "\t") {
			return s // with a tab, the printer escapes all of s itself
		}
		s = strings.ReplaceAll(s, "\f", string([]byte{tabwriter.Escape, '\f', tabwriter.Escape}))
		return strings.ReplaceAll(s, "\v", string([]byte{tabwriter.Escape, '\v', tabwriter.Escape}))
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Lit:
			n.Value = esc(n.Value)
		case *syntax.SglQuoted:
			n.Value = esc(n.Value)
		case *syntax.Comment:
			n.Text = esc(n.Text)
		case *syntax.ParamExp:
			if n.Slice != nil && n.Slice.Offset != nil {
				n.Slice.Offset = &syntax.ParenArithm{Lparen: n.Slice.Offset.Pos(), Rparen: n.Slice.Offset.End(), X: n.Slice.Offset}
			}
		case *syntax.UnaryArithm:
			if inner, ok := n.X.(*syntax.UnaryArithm); ok && !n.Post && !inner.Post {
				n.X = &syntax.ParenArithm{Lparen: inner.Pos(), Rparen: inner.End(), X: inner}
			}
		case *syntax.Stmt:
			// Walk visits copies of a statement's comments.
			for i := range n.Comments {
				n.Comments[i].Text = esc(n.Comments[i].Text)
			}
		}
		return true
	})
	return f
}

// usesLineno says whether f expands $LINENO anywhere.
func usesLineno(f *syntax.File) bool {
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if pe, ok := n.(*syntax.ParamExp); ok && pe.Param != nil && pe.Param.Value == "LINENO" {
			found = true
		}
		return !found
	})
	return found
}

// checkGraph fails t unless g is well formed: stages in order with ID equal
// to their index, edges going downstream between existing stages, no NUL in
// any string a process would get, and every position inside src.
func checkGraph(t *testing.T, src string, g *Graph) {
	t.Helper()
	if g.Name != "spec" {
		t.Fatalf("Parse(%q): graph name %q", src, g.Name)
	}
	if len(g.Stages) == 0 {
		t.Fatalf("Parse(%q): a graph without stages", src)
	}
	for i, st := range g.Stages {
		if st == nil || st.ID != i {
			t.Fatalf("Parse(%q): stage %d is %+v", src, i, st)
		}
		checkPos(t, src, "stage", st.Pos)
		for _, s := range append(append([]string(nil), st.Args...), st.Env...) {
			if strings.Contains(s, "\x00") {
				t.Fatalf("Parse(%q): stage %d has a NUL byte in %q", src, i, s)
			}
		}
		for _, e := range st.Env {
			if name, _, ok := strings.Cut(e, "="); !ok || !syntax.ValidName(name) {
				t.Fatalf("Parse(%q): stage %d has env entry %q", src, i, e)
			}
		}
		for _, r := range st.Redirs {
			checkPos(t, src, "redirection", r.Pos)
			if r.FD < 0 || r.Op < RedirRead || r.Op > RedirClose || r.DupFD < 0 || strings.Contains(r.Path, "\x00") {
				t.Fatalf("Parse(%q): stage %d has redirection %+v", src, i, r)
			}
		}
	}
	// Order is a permutation of the stages along which every edge goes
	// forward, and the graph passes its own check.
	at := make([]int, len(g.Stages))
	for i := range at {
		at[i] = -1
	}
	if len(g.Order) != len(g.Stages) {
		t.Fatalf("Parse(%q): order %v for %d stages", src, g.Order, len(g.Stages))
	}
	for k, s := range g.Order {
		if s < 0 || s >= len(g.Stages) || at[s] >= 0 {
			t.Fatalf("Parse(%q): order %v is no permutation", src, g.Order)
		}
		at[s] = k
	}
	for _, e := range g.Edges {
		if e.From.Stage < 0 || e.To.Stage < 0 || e.From.Stage >= len(g.Stages) || e.To.Stage >= len(g.Stages) || at[e.From.Stage] >= at[e.To.Stage] {
			t.Fatalf("Parse(%q): edge %+v between %d stages, order %v", src, e, len(g.Stages), g.Order)
		}
		checkPos(t, src, "edge", e.Pos)
	}
	if err := Check(g); err != nil {
		t.Fatalf("Parse(%q): the graph fails its check: %v", src, err)
	}
}

// checkPos fails t unless p is a position in src: a line that exists and a
// column on it, or just after its end.
func checkPos(t *testing.T, src, what string, p Pos) {
	t.Helper()
	lines := strings.Split(src, "\n")
	if p.Line < 1 || p.Line > len(lines) || p.Col < 1 || p.Col > len(lines[p.Line-1])+1 {
		t.Fatalf("Parse(%q): %s position %v is outside the source", src, what, p)
	}
}

// hasProcSubst reports whether f holds a process substitution.
// breaksComments reports whether a comment of f holds a character that
// the printer takes for a line's end.
func breaksComments(f *syntax.File) bool {
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.Comment); ok && strings.ContainsAny(c.Text, "\f\v\r") {
			found = true
		}
		return !found
	})
	return found
}

func hasProcSubst(f *syntax.File) bool {
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if _, ok := n.(*syntax.ProcSubst); ok {
			found = true
		}
		return !found
	})
	return found
}
