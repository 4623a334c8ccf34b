package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// WriteDot writes the plan as a Graphviz DOT graph, what --explain says as
// a picture: a node per stage, labelled with its number and words, shaped
// by what runs it (a box for a program, a rounded box for a builtin, a
// dashed one for a stage gpipe added, grey for a process substitution's
// stage, which also shows its place in the spec); an edge per edge, left
// to right as data flows, labelled with its ports where they are not the
// usual ones and its transport. After a run (rs not nil, --stats), each
// stage also shows how it ended and each edge the bytes it carried, or
// that gpipe could not count them. cmds and choices are the plan's, as
// for Explain.
func WriteDot(w io.Writer, g *parser.Graph, cmds []stage.Command, choices []plumbing.Choice, rs *Stats) {
	var b strings.Builder
	b.WriteString("digraph gpipe {\n")
	b.WriteString("\trankdir=LR;\n")
	b.WriteString("\tnode [shape=box, fontname=\"monospace\"];\n")
	b.WriteString("\tedge [fontname=\"monospace\", fontsize=10];\n")
	for i, st := range g.Stages {
		c := cmds[i]
		label := fmt.Sprintf("%s: %s", st.Number(), ShellWords(st.Args))
		if len(st.Args) == 0 {
			label = fmt.Sprintf("%s: (no command)", st.Number())
		}
		var style []string
		switch {
		case c.Builtin != "" && c.InProcess:
			label += "\nbuiltin, inside gpipe"
			style = append(style, "rounded")
		case c.Builtin != "":
			label += "\nbuiltin, own process"
			style = append(style, "rounded")
		case c.Path != "":
			label += "\n" + c.Path
		}
		if rs != nil {
			st := rs.Stages[i]
			label += "\n" + st.Reason
			if st.Wall != nil {
				label += ", " + secs(st.Wall)
			}
		}
		attrs := []string{""}
		switch {
		case st.Added != "":
			label += "\nadded by gpipe"
			style = append(style, "dashed")
		case st.Parent != nil:
			label += fmt.Sprintf("\nat %s, in stage %s", st.Pos, st.Parent.Number())
			attrs = append(attrs, `color="gray40"`)
		}
		attrs[0] = "label=" + dotQuote(label)
		if len(style) > 0 {
			attrs = append(attrs[:1], append([]string{"style=" + dotQuote(strings.Join(style, ","))}, attrs[1:]...)...)
		}
		fmt.Fprintf(&b, "\ts%d [%s];\n", i+1, strings.Join(attrs, ", "))
	}
	for i, e := range g.Edges {
		var label []string
		if e.From.FD != 1 || e.From.Name != "" {
			label = append(label, "from "+e.From.String())
		}
		if e.To.FD != 0 || e.To.Name != "" {
			label = append(label, "to "+e.To.String())
		}
		label = append(label, choices[i].Transport.String())
		if rs != nil {
			if b := rs.Edges[i].Bytes; b != nil {
				label = append(label, humanBytes(float64(*b)))
			} else {
				label = append(label, "bytes not counted")
			}
		}
		attrs := "label=" + dotQuote(strings.Join(label, "\n"))
		if g.Stages[e.From.Stage].Parent != nil || g.Stages[e.To.Stage].Parent != nil {
			attrs += `, style="dashed"`
		}
		fmt.Fprintf(&b, "\ts%d -> s%d [%s];\n", e.From.Stage+1, e.To.Stage+1, attrs)
	}
	b.WriteString("}\n")
	io.WriteString(w, b.String())
}

// dotQuote is s as a DOT string: quoted, with backslashes and quotes
// escaped and newlines as DOT's own line breaks.
func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

// SVGError is a failure of WriteSVG, with the exit status gpipe gives it:
// 127 when Graphviz's dot is not on the path, as for a command not found
// (and the message names the Debian package to install); 125 when dot
// could not run or failed.
type SVGError struct {
	Code int    // the exit status: 127 or 125
	Msg  string // the whole message
}

func (e *SVGError) Error() string { return e.Msg }

// WriteSVG renders the plan (after a run, with rs) through Graphviz's
// dot, which it looks for in path, a PATH. It fails with an *SVGError.
func WriteSVG(w io.Writer, g *parser.Graph, cmds []stage.Command, choices []plumbing.Choice, rs *Stats, path string) error {
	dot, err := LookDot(path)
	if err != nil {
		return err
	}
	var src, errBuf bytes.Buffer
	WriteDot(&src, g, cmds, choices, rs)
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &src, w, &errBuf
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &SVGError{Code: stage.ExitCannotStart, Msg: fmt.Sprintf("--svg: dot failed: %s", strings.TrimSpace(errBuf.String()))}
		}
		return &SVGError{Code: stage.ExitCannotStart, Msg: fmt.Sprintf("--svg: %v", err)}
	}
	return nil
}

// LookDot finds Graphviz's dot in path, a PATH: its file, or an
// *SVGError of status 127 that says what to install.
func LookDot(path string) (string, error) {
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/dot"
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNoDot
}

// errNoDot is --svg without Graphviz's dot: 127, as for a command not
// found, with the package to install; the same before a run (--svg
// --stats looks first, so that a missing dot starts nothing) and after.
var errNoDot = &SVGError{Code: stage.ExitNotFound, Msg: "--svg needs Graphviz's dot, which is not on PATH: install it (Debian and Ubuntu: apt-get install graphviz), or use --dot and render it elsewhere"}
