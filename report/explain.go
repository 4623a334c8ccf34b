package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// Explain prints the plan: what runs each stage, and each edge's
// transport with the reason for it. cmds and choices are stage.Resolve's
// (after stage.Place) and plumbing.Choose's for g.
func Explain(w io.Writer, g *parser.Graph, cmds []stage.Command, choices []plumbing.Choice) {
	for _, i := range g.Listed() {
		st := g.Stages[i]
		c := cmds[i]
		what := "redirections only"
		switch {
		case c.Builtin != "" && c.InProcess:
			what = "builtin " + c.Builtin
		case c.Builtin != "":
			what = "builtin " + c.Builtin + " in a process of its own"
		case c.Path != "":
			what = "program " + c.Path
		}
		if st.PerBlock {
			what += ", which runs " + perBlockCommand(c.Args) + " once per block"
		}
		// Quoted where a shell would need it, so that every word shows.
		words := ShellWords(st.Args)
		if words == "" {
			words = "(no command)"
		}
		fmt.Fprintf(w, "stage %s: %s: %s\n", st.Number(), words, what)
		if st.Parent != nil {
			fmt.Fprintf(w, "  (at %s, in a process substitution of stage %s", st.Pos, st.Parent.Number())
			for _, in := range st.Inherits {
				fmt.Fprintf(w, "; %s shared with stage %s", in.From, g.Stages[in.From.Stage].Number())
			}
			fmt.Fprintln(w, ")")
		}
		if st.Added != "" {
			fmt.Fprintf(w, "  (added by gpipe: %s)\n", st.Added)
		}
		if c.Note != "" {
			fmt.Fprintf(w, "  (%s)\n", c.Note)
		}
	}
	for i, e := range g.Edges {
		fmt.Fprintf(w, "edge %d: %s → %s: %s (%s)\n", i+1,
			PortName(g, e.From, 1), PortName(g, e.To, 0), choices[i].Transport, choices[i].Reason)
	}
}

// perBlockCommand is what a copy of an ordered par stage runs once per
// block, from its par-slot words: "program /usr/bin/grep", "builtin
// filter".
func perBlockCommand(args []string) string {
	for i, a := range args {
		if a == "--program" && i+1 < len(args) {
			return "program " + args[i+1]
		}
		if a == "--" && i+1 < len(args) {
			return "builtin " + args[i+1]
		}
	}
	return "its command"
}

// PortName is how --explain names an edge's end: the stage, and the port
// when it is not the usual one for its side.
func PortName(g *parser.Graph, p parser.Port, usual int) string {
	name := g.Stages[p.Stage].Name()
	if p.FD != usual || p.Name != "" {
		name += " " + p.String()
	}
	return name
}

// ShellQuote writes s so that a shell reads it back as one word.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+,@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellWords is words as a shell command line: each quoted where a shell
// would need it, joined by spaces.
func ShellWords(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = ShellQuote(w)
	}
	return strings.Join(quoted, " ")
}
