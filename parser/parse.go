package parser

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"

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
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, fromSyntaxError(name, err)
	}
	if len(f.Stmts) == 0 {
		return nil, &Error{Name: name, Pos: Pos{1, 1}, Text: "empty spec: nothing to run"}
	}
	if err := checkSupported(name, f); err != nil {
		return nil, err
	}
	b := &builder{name: name, cfg: cfg, g: &Graph{Name: name}}
	if err := b.pipeline(f.Stmts[0]); err != nil {
		return nil, err
	}
	return b.g, nil
}

// fromSyntaxError turns the shell parser's error into an *Error.
func fromSyntaxError(name string, err error) error {
	var pe syntax.ParseError
	if errors.As(err, &pe) {
		return &Error{Name: name, Pos: pos(pe.Pos), Text: pe.Text}
	}
	var le syntax.LangError
	if errors.As(err, &le) {
		text := strings.TrimPrefix(le.Error(), le.Filename+":"+le.Pos.String()+": ")
		return &Error{Name: name, Pos: pos(le.Pos), Text: text}
	}
	return &Error{Name: name, Pos: Pos{1, 1}, Text: err.Error()}
}

func pos(p syntax.Pos) Pos {
	if !p.IsValid() {
		return Pos{1, 1}
	}
	return Pos{Line: int(p.Line()), Col: int(p.Col())}
}

// checkSupported refuses, at the first offending position in the source,
// anything that is not a pipeline of simple commands.
func checkSupported(name string, f *syntax.File) error {
	if len(f.Stmts) > 1 {
		first := f.Stmts[0]
		at, what := f.Stmts[1].Pos(), "a second command"
		if first.Semicolon.IsValid() && !first.Background {
			at, what = first.Semicolon, "`;`"
		}
		if first.Background {
			at, what = first.Semicolon, "`&` (a background job)"
		}
		return &Error{Name: name, Pos: pos(at), Text: what + " is not part of a pipeline" + runHint}
	}
	var found *Error
	syntax.Walk(f, func(n syntax.Node) bool {
		if found != nil || n == nil {
			return false
		}
		if at, what := unsupported(n); what != "" {
			found = &Error{Name: name, Pos: pos(at), Text: what}
			return false
		}
		return true
	})
	if found != nil {
		return found
	}
	return nil
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
	case *syntax.ProcSubst:
		return n.Pos(), "process substitution `" + n.Op.String() + "…)` is not supported yet"
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
			if _, err := strconv.Atoi(n.N.Value); err != nil {
				return n.Pos(), "a named descriptor `{" + n.N.Value + "}` is not supported"
			}
		}
	}
	return syntax.Pos{}, ""
}

// builder flattens the syntax tree of one pipeline into the graph.
type builder struct {
	name string
	cfg  Config
	g    *Graph
}

func (b *builder) errorf(at syntax.Pos, text string) error {
	return &Error{Name: b.name, Pos: pos(at), Text: text}
}

// pipeline adds the stages of s in order, joining neighbours by an edge
// from fd 1 to fd 0. "a |& b" also sends a's stderr down the pipe, after a's
// own redirections, as bash does.
func (b *builder) pipeline(s *syntax.Stmt) error {
	switch c := s.Cmd.(type) {
	case *syntax.BinaryCmd:
		if len(s.Redirs) > 0 {
			return b.errorf(s.Redirs[0].Pos(), "a redirection of a whole pipeline is not supported"+runHint)
		}
		if err := b.pipeline(c.X); err != nil {
			return err
		}
		from := b.g.Stages[len(b.g.Stages)-1]
		if c.Op == syntax.PipeAll {
			from.Redirs = append(from.Redirs, Redirect{Pos: pos(c.OpPos), FD: 2, Op: RedirDup, DupFD: 1})
		}
		to := len(b.g.Stages)
		if err := b.pipeline(c.Y); err != nil {
			return err
		}
		b.g.Edges = append(b.g.Edges, &Edge{
			From: Port{Stage: from.ID, FD: 1},
			To:   Port{Stage: to, FD: 0},
			Pos:  pos(c.OpPos),
		})
		return nil
	case *syntax.CallExpr, nil:
		call, _ := c.(*syntax.CallExpr)
		st, err := b.stage(s, call)
		if err != nil {
			return err
		}
		st.ID = len(b.g.Stages)
		b.g.Stages = append(b.g.Stages, st)
		return nil
	}
	// checkSupported has refused every other command already.
	return b.errorf(s.Pos(), "not a pipeline stage"+runHint)
}
