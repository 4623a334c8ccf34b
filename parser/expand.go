package parser

import (
	"strconv"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// stage expands one simple command the way bash does inside a pipeline's
// subshell: words and redirection targets see the inherited environment,
// then the assignments are made left to right, each seeing the ones before.
// Expansions that assign (${x:=y}) touch only this stage's copy.
func (b *builder) stage(s *syntax.Stmt, call *syntax.CallExpr) (*Stage, error) {
	env := newStageEnv(b.cfg.Env)
	cfg := &expand.Config{Env: env, ReadDir2: b.cfg.ReadDir}
	st := &Stage{Pos: pos(s.Pos())}

	if call != nil {
		for _, w := range call.Args {
			fields, err := expand.Fields(cfg, w)
			if err != nil {
				return nil, b.errorf(w.Pos(), err.Error())
			}
			st.Args = append(st.Args, fields...)
		}
	}
	for _, r := range s.Redirs {
		rs, err := b.redirect(cfg, r)
		if err != nil {
			return nil, err
		}
		st.Redirs = append(st.Redirs, rs...)
	}
	if call != nil {
		for _, a := range call.Assigns {
			name := a.Name.Value
			value := ""
			if a.Value != nil {
				v, err := expand.Literal(cfg, a.Value)
				if err != nil {
					return nil, b.errorf(a.Value.Pos(), err.Error())
				}
				value = v
			}
			if a.Append {
				value = env.Get(name).String() + value
			}
			if a.Naked {
				// "X" alone as an assignment only happens in declarations,
				// which are refused; keep the variable as it is.
				continue
			}
			env.set(name, value)
			st.Env = append(st.Env, name+"="+value)
		}
	}
	return st, nil
}

// redirect expands one redirection into its bash meaning.
func (b *builder) redirect(cfg *expand.Config, r *syntax.Redirect) ([]Redirect, error) {
	fd := -1
	if r.N != nil {
		n, err := strconv.Atoi(r.N.Value)
		if err != nil {
			return nil, b.errorf(r.Pos(), "bad file descriptor "+r.N.Value)
		}
		fd = n
	}
	fields, err := expand.Fields(cfg, r.Word)
	if err != nil {
		return nil, b.errorf(r.Word.Pos(), err.Error())
	}
	if len(fields) != 1 {
		return nil, b.errorf(r.Word.Pos(), "ambiguous redirect")
	}
	target := fields[0]
	at := pos(r.Pos())
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
		src, err := strconv.Atoi(num)
		if err != nil || src < 0 {
			if r.Op == syntax.DplOut && r.N == nil {
				// bash reads ">&word" as "&>word" when word is not a number.
				return []Redirect{
					{Pos: at, FD: 1, Op: RedirWrite, Path: target},
					{Pos: at, FD: 2, Op: RedirDup, DupFD: 1},
				}, nil
			}
			return nil, b.errorf(r.Word.Pos(), target+": ambiguous redirect")
		}
		rs := []Redirect{{Pos: at, FD: fd, Op: RedirDup, DupFD: src}}
		if move {
			rs = append(rs, Redirect{Pos: at, FD: src, Op: RedirClose})
		}
		return rs, nil
	}
	return nil, b.errorf(r.Pos(), "redirection `"+r.Op.String()+"` is not supported")
}

// stageEnv is a stage's private, writable view of the environment.
type stageEnv struct {
	base expand.Environ
	own  map[string]expand.Variable
}

func newStageEnv(pairs []string) *stageEnv {
	return &stageEnv{base: expand.ListEnviron(pairs...), own: map[string]expand.Variable{}}
}

func (e *stageEnv) Get(name string) expand.Variable {
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

func (e *stageEnv) Set(name string, v expand.Variable) error {
	e.own[name] = v
	return nil
}

func (e *stageEnv) set(name, value string) {
	e.own[name] = expand.Variable{Set: true, Exported: true, Kind: expand.String, Str: value}
}
