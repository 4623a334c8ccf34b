package plumbing

import (
	"strconv"
	"strings"

	"github.com/gpipe/gpipe/parser"
)

// NameFIFOs gives a named FIFO in dir to each process substitution whose
// edge is one: marked "@fifo" in a pipeline file, or every one when all
// (--transport fifo). The parser gives a process substitution the path
// bash gives it, /dev/fd/N; here the port is renamed dir/K (K counts from
// 1 in the order of the edges) and the path is put in place of /dev/fd/N
// in its stage's words, assignments and redirection targets, so that the
// stage opens the FIFO by its path, which outlives descriptor
// inheritance (it can hand it to another process, or open it again).
// A /dev/fd/N the user wrote in that stage is the same descriptor in
// bash, and is renamed with it. The ports of the tees gpipe added, and of
// a par stage's dealer and merge, stay descriptors: they write and read
// them by number.
func NameFIFOs(g *parser.Graph, dir string, all bool) {
	// A par stage's dealer, like its copies and merge, is gpipe's: it
	// writes its copies' ports by number.
	dealers := map[int]bool{}
	for _, st := range g.Stages {
		if st.CopyOf != nil {
			dealers[st.CopyOf.ID] = true
		}
	}
	named := 0
	for _, e := range g.Edges {
		if e.Transport != parser.TransportFIFO && !all {
			continue
		}
		for _, p := range []*parser.Port{&e.From, &e.To} {
			st := g.Stages[p.Stage]
			if p.Name == "" || st.Added != "" || dealers[p.Stage] || !strings.HasPrefix(p.Name, "/dev/fd/") {
				continue
			}
			named++
			path := dir + "/" + strconv.Itoa(named)
			renameIn(st, p.Name, path)
			p.Name, e.FIFO = path, path
			e.Transport = parser.TransportFIFO
		}
	}
}

// renameIn replaces old, a /dev/fd/N path, by path wherever a word of st
// holds it, not where it is the start of a longer number (/dev/fd/630).
func renameIn(st *parser.Stage, old, path string) {
	for i := range st.Args {
		st.Args[i] = replacePath(st.Args[i], old, path)
	}
	for i := range st.Env {
		st.Env[i] = replacePath(st.Env[i], old, path)
	}
	for i := range st.Redirs {
		st.Redirs[i].Path = replacePath(st.Redirs[i].Path, old, path)
	}
}

func replacePath(s, old, path string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			break
		}
		end := i + len(old)
		if end < len(s) && s[end] >= '0' && s[end] <= '9' {
			b.WriteString(s[:end])
			s = s[end:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(path)
		s = s[end:]
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s)
	return b.String()
}
