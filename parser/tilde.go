package parser

import (
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// assignTildes performs the tilde expansion that bash does in assignments
// and that mvdan.cc/sh/v3/expand leaves out: after the "=" of an argument
// that looks like an assignment ("x=~/y", "x+=~/y"), and after every
// unquoted ":" of an assignment's value or of such an argument
// ("PATH=/bin:~/bin"). The start of an assignment's value is expanded by
// expand itself. A tilde-prefix runs to the next "/" or ":"; one with a
// quoted character in it, or that an expansion follows, stays as written.
// Each expanded prefix becomes a single-quoted part, since bash does not
// split or glob what a tilde expands to.
//
// value says whether w is an assignment's value rather than an argument.
func assignTildes(cfg *expand.Config, w *syntax.Word, value bool) {
	first := -1 // where the value starts in the first part, for an argument
	if !value {
		lit, ok := w.Parts[0].(*syntax.Lit)
		if !ok {
			return
		}
		eq := strings.IndexByte(lit.Value, '=')
		if eq < 0 {
			return
		}
		if name := strings.TrimSuffix(lit.Value[:eq], "+"); !syntax.ValidName(name) {
			return
		}
		first = eq + 1
	}
	var parts []syntax.WordPart
	changed := false
	for i, p := range w.Parts {
		lit, ok := p.(*syntax.Lit)
		if !ok || !strings.Contains(lit.Value, "~") {
			parts = append(parts, p)
			continue
		}
		start := -1
		if i == 0 {
			start = first
		}
		split := tildeSplit(cfg, lit, start, i == len(w.Parts)-1)
		if len(split) > 1 {
			changed = true
		}
		parts = append(parts, split...)
	}
	if changed {
		w.Parts = parts
	}
}

// tildeSplit returns lit with its tilde-prefixes at offset start and after
// unquoted colons expanded, as literal and single-quoted parts. last says
// whether lit ends the word, so that a prefix may run to its end.
func tildeSplit(cfg *expand.Config, lit *syntax.Lit, start int, last bool) []syntax.WordPart {
	v := lit.Value
	var parts []syntax.WordPart
	seg := 0 // start of the literal text not yet in parts
	afterColon := false
	for j := 0; j < len(v); {
		if v[j] == '~' && (j == start || afterColon) {
			k := j + 1
			for k < len(v) && v[k] != '/' && v[k] != ':' {
				k++
			}
			if !strings.Contains(v[j:k], `\`) && (k < len(v) || last) {
				if home, ok := homeOf(cfg, v[j:k]); ok {
					if seg < j {
						parts = append(parts, &syntax.Lit{ValuePos: lit.ValuePos, ValueEnd: lit.ValueEnd, Value: v[seg:j]})
					}
					parts = append(parts, &syntax.SglQuoted{Left: lit.ValuePos, Right: lit.ValueEnd, Value: home})
					seg, j, afterColon = k, k, false
					continue
				}
			}
		}
		if v[j] == '\\' {
			afterColon = false
			j += 2 // an escaped character, ":" included, separates nothing
			continue
		}
		afterColon = v[j] == ':'
		j++
	}
	if seg == 0 {
		return []syntax.WordPart{lit}
	}
	if seg < len(v) {
		parts = append(parts, &syntax.Lit{ValuePos: lit.ValuePos, ValueEnd: lit.ValueEnd, Value: v[seg:]})
	}
	return parts
}

// homeOf expands the tilde-prefix "~" or "~user" as expand does at the start
// of a word: HOME, or the user's home directory; ok is false if it has none.
func homeOf(cfg *expand.Config, prefix string) (string, bool) {
	home, err := expand.Literal(cfg, &syntax.Word{Parts: []syntax.WordPart{&syntax.Lit{Value: prefix}}})
	if err != nil || home == prefix {
		return "", false
	}
	return home, true
}
