package parser

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testEnv is the environment the tables expand with; FuzzParse uses it too.
var testEnv = []string{"HOME=/home/gp", "X=x y", "EMPTY=", "N=3", "REF=N", "P=*.go"}

func l(s ...string) []string { return s }

// edge is the pipe a | b makes from stage from's stdout to stage to's stdin.
func edge(from, to int) Edge {
	return Edge{From: Port{Stage: from, FD: 1}, To: Port{Stage: to, FD: 0}}
}

func file(fd int, op RedirOp, path string) Redirect {
	return Redirect{FD: fd, Op: op, Path: path}
}

func dup(fd, src int) Redirect    { return Redirect{FD: fd, Op: RedirDup, DupFD: src} }
func closed(fd int) Redirect      { return Redirect{FD: fd, Op: RedirClose} }
func rs(r ...Redirect) []Redirect { return r }

var parseTests = []struct {
	name   string
	src    string
	stages []Stage // ID is the index, positions are checked by TestParsePositions
	edges  []Edge
}{
	// Pipeline shapes.
	{"one", "seq 1 100", []Stage{{Args: l("seq", "1", "100")}}, nil},
	// "@" is pipeline-file syntax only as a command word, and unquoted.
	{"at sign as an argument", "echo @x @x:3 @fifo | '@src' @stdin", []Stage{{Args: l("echo", "@x", "@x:3", "@fifo")}, {Args: l("@src", "@stdin")}}, []Edge{edge(0, 1)}},
	{"at sign that is no reference", "@ | @a-b", []Stage{{Args: l("@")}, {Args: l("@a-b")}}, []Edge{edge(0, 1)}},
	{"empty brace alternative", `echo {,x} ""{,y} z{,} "${EMPTY:-}" ${EMPTY:-}`, []Stage{{Args: l("echo", "x", "", "y", "z", "z", "")}}, nil},
	{"no positional parameters", `printf "$@" x $@ "$*" $# "a$@b" ${X/\#/-}`, []Stage{{Args: l("printf", "x", "", "0", "ab", "x", "y")}}, nil},
	{"three", "seq 1 100 | grep 7 | wc -l",
		[]Stage{{Args: l("seq", "1", "100")}, {Args: l("grep", "7")}, {Args: l("wc", "-l")}},
		[]Edge{edge(0, 1), edge(1, 2)}},
	{"newline after pipe", "a |\n\n  b # comment\n",
		[]Stage{{Args: l("a")}, {Args: l("b")}}, []Edge{edge(0, 1)}},
	{"blanks and trailing semicolon", " \t a|b ; ",
		[]Stage{{Args: l("a")}, {Args: l("b")}}, []Edge{edge(0, 1)}},
	{"comment lines before", "# first\n\na | b", []Stage{{Args: l("a")}, {Args: l("b")}}, []Edge{edge(0, 1)}},
	{"line continuation", "echo a \\\n  b | \\\ncat # \\\\\n",
		[]Stage{{Args: l("echo", "a", "b")}, {Args: l("cat")}}, []Edge{edge(0, 1)}},

	// Quoting and backslashes.
	{"single and double quotes", `echo 'a  b' "c  d" 'it''s' "say \"hi\"" '' ""`,
		[]Stage{{Args: l("echo", "a  b", "c  d", "its", `say "hi"`, "", "")}}, nil},
	{"backslashes", `echo e\ \ f a\\b "a\\b" "a\b" 'a\\b' \$X "\$X" \a "\` + "`" + `"`,
		[]Stage{{Args: l("echo", "e  f", `a\b`, `a\b`, `a\b`, `a\\b`, "$X", "$X", "a", "`")}}, nil},
	{"dollar quotes", `echo $'a\tb' $'\x41\u00e9' $'it\'s' $"x"`,
		[]Stage{{Args: l("echo", "a\tb", "Aé", "it's", "x")}}, nil},
	{"quoted operators", `echo '|' "&&" \; '>' a\|b`,
		[]Stage{{Args: l("echo", "|", "&&", ";", ">", "a|b")}}, nil},

	// Parameter expansions.
	{"variables", `echo $X "$X" ${X} "${X}"x $EMPTY "$EMPTY" $UNSET a$EMPTY`,
		[]Stage{{Args: l("echo", "x", "y", "x y", "x", "y", "x yx", "", "a")}}, nil},
	{"defaults", `echo ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${X:-d} ${UNSET-d} "${UNSET:-a b}" ${UNSET:-$N}`,
		[]Stage{{Args: l("echo", "d", "d", "x", "y", "d", "a b", "3")}}, nil},
	{"other parameter expansions",
		`echo ${X:+alt} ${EMPTY:+alt} ${#X} ${X#x} ${X%y} ${X/ /_} ${X// /} ${X^^} ${X^} ${X:2} ${X:0:1} ${X: -1} ${!REF} ${!RE*} "${X@Q}"`,
		[]Stage{{Args: l("echo", "alt", "3", "y", "x", "x_y", "xy", "X", "Y", "X", "y", "y", "x", "y", "3", "REF", "'x y'")}}, nil},
	{"assigning expansions stay in the stage", `echo ${NEW:=v} $NEW "${EMPTY:=e}" $EMPTY | echo $NEW $EMPTY.`,
		[]Stage{{Args: l("echo", "v", "v", "e", "e")}, {Args: l("echo", ".")}}, []Edge{edge(0, 1)}},
	{"escapes in expansion words",
		`echo ${U:-\$X} "${U:-\$X}" ${U:-a\\b} "${U:-a\\b}" ${X/x/\\} "${X/x/\\}" "${X/x/\*}" ${U:-\"} "${U:-\"}" "${U:-a\ b}" ${U:-\~}`,
		[]Stage{{Args: l("echo", "$X", "$X", `a\b`, `a\b`, `\`, "y", `\ y`, "* y", `"`, `"`, `a\ b`, "~")}}, nil},
	{"special parameters are unset, but no positional ones: $# is 0", `echo $# $? $$ $0 $1 $@ "$*" ${LINENO}`,
		[]Stage{{Args: l("echo", "0", "", "1")}}, nil},

	// Arithmetic.
	{"arithmetic", `echo $((1 + 2)) $((N * N)) $(( (1<<4) | 1 )) $((-7 / 2)) $((7 % -3)) $((2**10)) $((N > 2 ? 10 : 20)) $((UNSET + 1))`,
		[]Stage{{Args: l("echo", "3", "9", "17", "-3", "1", "1024", "10", "1")}}, nil},
	{"arithmetic assigns in the stage only", `echo $((N++ + N)) $N $((x = 5, x * 2)) $x | echo $N`,
		[]Stage{{Args: l("echo", "7", "4", "10", "5")}, {Args: l("echo", "3")}}, []Edge{edge(0, 1)}},
	{"arithmetic wraps like bash", `echo $((2**64)) $((-2**63 / -1)) $((9223372036854775807 + 1))`,
		[]Stage{{Args: l("echo", "0", "-9223372036854775808", "-9223372036854775808")}}, nil},

	// Brace expansion.
	{"braces", `echo {a,b}c x{1..3} {3..1} {a..c} {1..10..4} {01..03} {a,b}{1,2} {a,b\,c}`,
		[]Stage{{Args: l("echo", "ac", "bc", "x1", "x2", "x3", "3", "2", "1", "a", "b", "c", "1", "5", "9",
			"01", "02", "03", "a1", "a2", "b1", "b2", "a", "b,c")}}, nil},
	{"not braces", `echo {x} {a..} "{a,b}" '{a,b}' \{a,b} {`,
		[]Stage{{Args: l("echo", "{x}", "{a..}", "{a,b}", "{a,b}", "{a,b}", "{")}}, nil},

	// Tilde.
	{"tilde", `echo ~ ~/d "~" '~' \~ a~ ~/"$X"`,
		[]Stage{{Args: l("echo", "/home/gp", "/home/gp/d", "~", "~", "~", "a~", "/home/gp/x y")}}, nil},
	{"tilde sees the outer HOME", `HOME=/h echo ~ | A=~/a cmd`,
		[]Stage{{Args: l("echo", "/home/gp"), Env: l("HOME=/h")}, {Args: l("cmd"), Env: l("A=/home/gp/a")}},
		[]Edge{edge(0, 1)}},

	{"tilde after = and : in assignments", `A=a:~/x:~ B=~\/y C=~/"q" D=x:~"q" HOME=/n E=~ F=a:~ cmd`,
		[]Stage{{Args: l("cmd"), Env: l("A=a:/home/gp/x:/home/gp", "B=~/y", "C=/home/gp/q", "D=x:~q", "HOME=/n", "E=/n", "F=a:/n")}}, nil},
	{"tilde in arguments that look like assignments", `echo x=~/a:~/b:c~:~ x+=~ "x"=~/y x=~"q" x=\~/y x=a\:~/y 1x=~/y --opt=~/y a:~/y`,
		[]Stage{{Args: l("echo", "x=/home/gp/a:/home/gp/b:c~:/home/gp", "x+=/home/gp", "x=~/y", "x=~q", "x=~/y", "x=a:~/y", "1x=~/y", "--opt=~/y", "a:~/y")}}, nil},

	// Globs without ReadDir stay as written.
	{"globs without ReadDir", `echo *.go ? [ab] $P`,
		[]Stage{{Args: l("echo", "*.go", "?", "[ab]", "*.go")}}, nil},

	// Assignments.
	{"assignments", `A=1 B=$A cmd $A`, []Stage{{Args: l("cmd"), Env: l("A=1", "B=1")}}, nil},
	{"assignments see the outer value in args", `N=1 M=$N cmd $N`,
		[]Stage{{Args: l("cmd", "3"), Env: l("N=1", "M=1")}}, nil},
	{"assignment values are not split or globbed", `A=$X B="a b" C=* D= cmd`,
		[]Stage{{Args: l("cmd"), Env: l("A=x y", "B=a b", "C=*", "D=")}}, nil},
	{"append assignment", `N+=1 M+=x cmd`, []Stage{{Args: l("cmd"), Env: l("N=31", "M=x")}}, nil},
	{"escapes in assignments", `A=a\ b B=\$X C=\\ D=\a E=\~ F="a\ b" G=a\\\\b H=~/a\ b cmd`,
		[]Stage{{Args: l("cmd"), Env: l("A=a b", "B=$X", `C=\`, "D=a", "E=~", `F=a\ b`, `G=a\\b`, "H=/home/gp/a b")}}, nil},
	{"trailing backslash", `A=\`, []Stage{{Env: l(`A=\`)}}, nil},
	{"not a name: a word", `A=1 0=a B=$X cmd`, []Stage{{Args: l("0=a", "B=x", "y", "cmd"), Env: l("A=1")}}, nil},
	{"assignment only stage", `X=1 | b`, []Stage{{Env: l("X=1")}, {Args: l("b")}}, []Edge{edge(0, 1)}},
	{"word after a command is no assignment", `cmd A=1`, []Stage{{Args: l("cmd", "A=1")}}, nil},

	// Redirections, in order.
	{"read", `cat < in`, []Stage{{Args: l("cat"), Redirs: rs(file(0, RedirRead, "in"))}}, nil},
	{"write", `echo > out`, []Stage{{Args: l("echo"), Redirs: rs(file(1, RedirWrite, "out"))}}, nil},
	{"clobber", `echo >| out`, []Stage{{Args: l("echo"), Redirs: rs(file(1, RedirWrite, "out"))}}, nil},
	{"append", `echo >> out`, []Stage{{Args: l("echo"), Redirs: rs(file(1, RedirAppend, "out"))}}, nil},
	{"read-write", `cat <> rw 3<>rw3`,
		[]Stage{{Args: l("cat"), Redirs: rs(file(0, RedirReadWrite, "rw"), file(3, RedirReadWrite, "rw3"))}}, nil},
	{"stderr", `cmd 2> err 2>>err2`,
		[]Stage{{Args: l("cmd"), Redirs: rs(file(2, RedirWrite, "err"), file(2, RedirAppend, "err2"))}}, nil},
	{"stderr to stdout", `cmd 2>&1`, []Stage{{Args: l("cmd"), Redirs: rs(dup(2, 1))}}, nil},
	{"stdout to stderr", `cmd >&2 1>&2`, []Stage{{Args: l("cmd"), Redirs: rs(dup(1, 2), dup(1, 2))}}, nil},
	{"input dup", `cmd <&3 0<&4`, []Stage{{Args: l("cmd"), Redirs: rs(dup(0, 3), dup(0, 4))}}, nil},
	{"close", `cmd 3>&- <&- >&- 4<&-`,
		[]Stage{{Args: l("cmd"), Redirs: rs(closed(3), closed(0), closed(1), closed(4))}}, nil},
	{"all", `cmd &> all`, []Stage{{Args: l("cmd"), Redirs: rs(file(1, RedirWrite, "all"), dup(2, 1))}}, nil},
	{"append all", `cmd &>> all`, []Stage{{Args: l("cmd"), Redirs: rs(file(1, RedirAppend, "all"), dup(2, 1))}}, nil},
	{">&file is &>file", `cmd >&file >&+1`,
		[]Stage{{Args: l("cmd"), Redirs: rs(file(1, RedirWrite, "file"), dup(2, 1), file(1, RedirWrite, "+1"), dup(2, 1))}}, nil},
	{"quoted dash is a file", `cmd >&"-x"`,
		[]Stage{{Args: l("cmd"), Redirs: rs(file(1, RedirWrite, "-x"), dup(2, 1))}}, nil},
	{"move", `cmd 3>&1- 4<&0-`,
		[]Stage{{Args: l("cmd"), Redirs: rs(dup(3, 1), closed(1), dup(4, 0), closed(0))}}, nil},
	{"move onto itself keeps it open", `cmd >&1- 0<&0-`,
		[]Stage{{Args: l("cmd"), Redirs: rs(dup(1, 1), dup(0, 0))}}, nil},
	{"dup from an expansion", `cmd >&$N 2>&"1" 5>&0$N`,
		[]Stage{{Args: l("cmd"), Redirs: rs(dup(1, 3), dup(2, 1), dup(5, 3))}}, nil},
	{"order is kept", `cmd >f 2>&1 | cmd 2>&1 >f`,
		[]Stage{
			{Args: l("cmd"), Redirs: rs(file(1, RedirWrite, "f"), dup(2, 1))},
			{Args: l("cmd"), Redirs: rs(dup(2, 1), file(1, RedirWrite, "f"))},
		}, []Edge{edge(0, 1)}},
	{"targets are expanded", `cmd > "$X" 2> ~/e < $N.in >> *.go`,
		[]Stage{{Args: l("cmd"), Redirs: rs(file(1, RedirWrite, "x y"), file(2, RedirWrite, "/home/gp/e"),
			file(0, RedirRead, "3.in"), file(1, RedirAppend, "*.go"))}}, nil},
	{"redirections anywhere", `> out cmd a 2>err b`,
		[]Stage{{Args: l("cmd", "a", "b"), Redirs: rs(file(1, RedirWrite, "out"), file(2, RedirWrite, "err"))}}, nil},
	{"redirection only stages", `> f | < in`,
		[]Stage{{Redirs: rs(file(1, RedirWrite, "f"))}, {Redirs: rs(file(0, RedirRead, "in"))}}, []Edge{edge(0, 1)}},

	// |& sends stderr down the pipe too, after the stage's own redirections.
	{"pipe all", `a |& b | c |& d`,
		[]Stage{{Args: l("a"), Redirs: rs(dup(2, 1))}, {Args: l("b")}, {Args: l("c"), Redirs: rs(dup(2, 1))}, {Args: l("d")}},
		[]Edge{edge(0, 1), edge(1, 2), edge(2, 3)}},
	{"pipe all after own redirections", `a 2>/dev/null |& b`,
		[]Stage{{Args: l("a"), Redirs: rs(file(2, RedirWrite, "/dev/null"), dup(2, 1))}, {Args: l("b")}},
		[]Edge{edge(0, 1)}},

	// Everything at once.
	{"mixed", `LC_ALL=C sort -k2 < "$X" 2>/dev/null | uniq -c |& tee ~/log >&2`,
		[]Stage{
			{Args: l("sort", "-k2"), Env: l("LC_ALL=C"), Redirs: rs(file(0, RedirRead, "x y"), file(2, RedirWrite, "/dev/null"))},
			{Args: l("uniq", "-c"), Redirs: rs(dup(2, 1))},
			{Args: l("tee", "/home/gp/log"), Redirs: rs(dup(1, 2))},
		}, []Edge{edge(0, 1), edge(1, 2)}},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse("spec", tt.src, Config{Env: testEnv})
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			checkGraph(t, tt.src, g)
			want := &Graph{Name: "spec"}
			for i := range tt.stages {
				st := tt.stages[i]
				st.ID = i
				want.Stages = append(want.Stages, &st)
			}
			for i := range tt.edges {
				want.Edges = append(want.Edges, &tt.edges[i])
			}
			if got, want := graphText(g), graphText(want); got != want {
				t.Errorf("Parse(%q):\n%s\nwant:\n%s", tt.src, short(got), want)
			}
		})
	}
}

// short is s cut to a length a test failure can show.
func short(s string) string {
	if len(s) > 2000 {
		return s[:2000] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}

// graphText is g's stages and edges without their positions, one per line.
func graphText(g *Graph) string {
	var sb strings.Builder
	for _, st := range g.Stages {
		fmt.Fprintf(&sb, "stage %d: args %q env %q redirs", st.ID, st.Args, st.Env)
		for _, r := range st.Redirs {
			fmt.Fprintf(&sb, " {fd %d op %d path %q dup %d}", r.FD, r.Op, r.Path, r.DupFD)
		}
		sb.WriteByte('\n')
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&sb, "edge %d.%d%s -> %d.%d%s %v\n", e.From.Stage, e.From.FD, e.From.Name, e.To.Stage, e.To.FD, e.To.Name, e.Transport)
	}
	return sb.String()
}

// TestParsePositions checks where stages, their redirections and edges are
// said to be: "stage [redirections] | …; edges".
func TestParsePositions(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"a", "1:1 []; "},
		{"  a |   b", "1:3 [] | 1:9 []; 1:5"},
		{"A=1 cmd >f |& b 2>&1 |\n  c", "1:1 [1:9 1:12] | 1:15 [1:17] | 2:3 []; 1:12 1:22"},
		{"x=1 > f cmd | < in", "1:1 [1:5] | 1:15 [1:15]; 1:13"},
		{"cat &>f 3>&1- >&file", "1:1 [1:5 1:5 1:9 1:9 1:15 1:15]; "},
		{"# c\n\na |\n\n\tb", "3:1 [] | 5:2 []; 3:3"},
		{"echo é | ü", "1:1 [] | 1:11 []; 1:9"}, // columns count bytes
		// Past the columns and lines the shell parser's positions hold.
		{strings.Repeat(" ", 20000) + "a | b >f", "1:20001 [] | 1:20005 [1:20007]; 1:20003"},
		{strings.Repeat("\n", 300000) + "a |\n b", "300001:1 [] | 300002:2 []; 300001:3"},
	} {
		g, err := Parse("spec", tt.src, Config{Env: testEnv})
		if err != nil {
			t.Errorf("Parse(%q): %v", short(tt.src), err)
			continue
		}
		var stages, edges []string
		for _, st := range g.Stages {
			var redirs []string
			for _, r := range st.Redirs {
				redirs = append(redirs, r.Pos.String())
			}
			stages = append(stages, fmt.Sprintf("%v [%s]", st.Pos, strings.Join(redirs, " ")))
		}
		for _, e := range g.Edges {
			edges = append(edges, e.Pos.String())
		}
		if got := strings.Join(stages, " | ") + "; " + strings.Join(edges, " "); got != tt.want {
			t.Errorf("Parse(%q) positions:\n got %s\nwant %s", short(tt.src), got, tt.want)
		}
	}
}

func TestParseGlob(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.go", "b.go", "c.txt", ".hidden.go", "sub/d.go", "sub/e.txt"} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Env: append([]string{"PWD=" + dir, "P=*.go"}, testEnv...), ReadDir: os.ReadDir}
	for _, tt := range []struct {
		src  string
		args []string
		path string // of the one redirection, if any
	}{
		{src: "ls *.go", args: l("ls", "a.go", "b.go")},
		{src: "ls *.md", args: l("ls", "*.md")}, // no match: kept as written
		{src: "ls ?.* [bc].*", args: l("ls", "a.go", "b.go", "c.txt", "b.go", "c.txt")},
		{src: "ls sub/* */*.txt", args: l("ls", "sub/d.go", "sub/e.txt", "sub/e.txt")},
		{src: "ls .*.go", args: l("ls", ".hidden.go")},
		{src: `ls "*.go" '*.go' \*.go`, args: l("ls", "*.go", "*.go", "*.go")}, // quoted: no glob
		{src: "ls $P", args: l("ls", "a.go", "b.go")},                          // unquoted expansion globs
		{src: `ls "$P"`, args: l("ls", "*.go")},
		{src: "ls " + dir + "/sub/*.go", args: l("ls", dir+"/sub/d.go")},
		{src: "A=*.go cmd", args: l("cmd")}, // assignments do not glob
		{src: "cat < *.txt", args: l("cat"), path: "c.txt"},
		{src: "cat < *.md", args: l("cat"), path: "*.md"},
	} {
		g, err := Parse("spec", tt.src, cfg)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		st := g.Stages[0]
		if !reflect.DeepEqual(st.Args, tt.args) {
			t.Errorf("Parse(%q) args = %q, want %q", tt.src, st.Args, tt.args)
		}
		if tt.path != "" && (len(st.Redirs) != 1 || st.Redirs[0].Path != tt.path) {
			t.Errorf("Parse(%q) redirections = %+v, want one to %q", tt.src, st.Redirs, tt.path)
		}
	}
	if g, err := Parse("spec", "A=*.go cmd", cfg); err == nil && !reflect.DeepEqual(g.Stages[0].Env, l("A=*.go")) {
		t.Errorf("Parse(A=*.go cmd) env = %q", g.Stages[0].Env)
	}
	_, err := Parse("spec", "cat < *.go", cfg)
	if want := "spec:1:7: *.go: ambiguous redirect"; err == nil || err.Error() != want {
		t.Errorf("Parse(cat < *.go) error = %v, want %s", err, want)
	}
}

const hint = "; run it as a stage: sh -c '…'"

// errorCases are refused specs and their exact messages.
var errorCases = []struct{ src, want string }{
	// The syntax of pipeline files, as a spec's command word.
	{"seq 3 | @src | cat", "spec:1:9: `@src` refers to a named stage (`src: COMMAND…`), which only a pipeline file has; put the pipeline in a pipeline file and run it with gpipe -f FILE (docs/pipeline-files.md)"},
	{"X=1 @w:3", "spec:1:5: `@w:3` refers to a named stage (`w: COMMAND…`), which only a pipeline file has; put the pipeline in a pipeline file and run it with gpipe -f FILE (docs/pipeline-files.md)"},
	{"paste <(@a) <(seq 3)", "spec:1:9: `@a` refers to a named stage (`a: COMMAND…`), which only a pipeline file has; put the pipeline in a pipeline file and run it with gpipe -f FILE (docs/pipeline-files.md)"},
	{"seq 3 | @fifo | cat", "spec:1:9: `@fifo` is a transport mark, which only a pipeline file has; for every edge of a spec, use --transport fifo"},
	{"@stdin | cat", "spec:1:1: `@stdin` is gpipe's own stdin in a pipeline file only; in a spec, the pipeline's ends are gpipe's stdin and stdout already"},
	// Lists, jobs and negation.
	{"make && ls | wc -l", "spec:1:6: `&&` is not part of a pipeline" + hint},
	{"a || b", "spec:1:3: `||` is not part of a pipeline" + hint},
	{"a | b || c", "spec:1:7: `||` is not part of a pipeline" + hint},
	{"a | b && c || d", "spec:1:7: `&&` is not part of a pipeline" + hint}, // the first in the source
	{"a && b; c", "spec:1:3: `&&` is not part of a pipeline" + hint},
	{"a; b && c", "spec:1:2: `;` is not part of a pipeline" + hint},
	{"a | b $(c) && d", "spec:1:7: command substitution `$(…)` is not supported" + hint},
	{"a; b", "spec:1:2: `;` is not part of a pipeline" + hint},
	{"a | b ; c | d", "spec:1:7: `;` is not part of a pipeline" + hint},
	{"a\nb", "spec:2:1: a second command is not part of a pipeline" + hint},
	{"a | b\n\n  c d", "spec:3:3: a second command is not part of a pipeline" + hint},
	{"a &", "spec:1:3: `&` (a background job) is not part of a pipeline" + hint},
	{"a & b", "spec:1:3: `&` (a background job) is not part of a pipeline" + hint},
	{"a | b &", "spec:1:7: `&` (a background job) is not part of a pipeline" + hint},
	{"! a", "spec:1:1: `!` (negating a pipeline's status) is not supported" + hint},
	{"! a | b", "spec:1:1: `!` (negating a pipeline's status) is not supported" + hint},
	{"a | ! b", "spec:1:5: `!` can only be used in full statements"},
	{"coproc a", "spec:1:1: a coprocess is not part of a pipeline" + hint},

	// Compound commands.
	{"(a)", "spec:1:1: a subshell `( … )` is not a pipeline stage" + hint},
	{"a | (b; c)", "spec:1:5: a subshell `( … )` is not a pipeline stage" + hint},
	{"{ a; }", "spec:1:1: a block `{ … }` is not a pipeline stage" + hint},
	{"a | { b; c; } | d", "spec:1:5: a block `{ … }` is not a pipeline stage" + hint},
	{"if a; then b; fi", "spec:1:1: an if statement is not a pipeline stage" + hint},
	{"while a; do b; done", "spec:1:1: a while loop is not a pipeline stage" + hint},
	{"a | until b; do c; done", "spec:1:5: an until loop is not a pipeline stage" + hint},
	{"for i in a b; do echo $i; done", "spec:1:1: a for loop is not a pipeline stage" + hint},
	{"for ((i = 0; i < 3; i++)); do echo; done", "spec:1:1: a for loop is not a pipeline stage" + hint},
	{"select x in a; do b; done", "spec:1:1: a select loop is not a pipeline stage" + hint},
	{"case $X in x) a;; esac", "spec:1:1: a case statement is not a pipeline stage" + hint},
	{"f() { a; }", "spec:1:1: a function definition is not a pipeline stage" + hint},
	{"function f { a; }", "spec:1:1: a function definition is not a pipeline stage" + hint},
	{"[[ -f x ]]", "spec:1:1: a test `[[ … ]]` is not a pipeline stage" + hint},
	{"a | [[ $X ]]", "spec:1:5: a test `[[ … ]]` is not a pipeline stage" + hint},
	{"(( N > 1 ))", "spec:1:1: an arithmetic command `(( … ))` is not a pipeline stage" + hint},

	// Builtins in declaration position.
	{"export X=1", "spec:1:1: `export` is a shell builtin, not a pipeline stage" + hint},
	{"a | export X=1", "spec:1:5: `export` is a shell builtin, not a pipeline stage" + hint},
	{"declare -x X", "spec:1:1: `declare` is a shell builtin, not a pipeline stage" + hint},
	{"local X=1", "spec:1:1: `local` is a shell builtin, not a pipeline stage" + hint},
	{"readonly X", "spec:1:1: `readonly` is a shell builtin, not a pipeline stage" + hint},
	{"typeset X", "spec:1:1: `typeset` is a shell builtin, not a pipeline stage" + hint},
	{"let x=1", "spec:1:1: `let` is a shell builtin, not a pipeline stage" + hint},
	{"time a", "spec:1:1: `time` is not supported in a pipeline" + hint},
	{"time a | b", "spec:1:1: `time` is not supported in a pipeline" + hint},

	// Substitutions, here-documents.
	{"echo $(ls)", "spec:1:6: command substitution `$(…)` is not supported" + hint},
	{"echo ${X/#x/y}", "spec:1:6: anchored substitution `${name/#pattern/…}` is not supported" + hint},
	{`echo "${@:-x}"`, "spec:1:7: an operator on `$@` is not supported: gpipe has no positional parameters"},
	{`echo ${*/a/b}`, "spec:1:6: an operator on `$*` is not supported: gpipe has no positional parameters"},
	{`echo "${X/%y/z}"`, "spec:1:7: anchored substitution `${name/%pattern/…}` is not supported" + hint},
	{`echo "a $(ls)"`, "spec:1:9: command substitution `$(…)` is not supported" + hint},
	{"echo `ls`", "spec:1:6: command substitution `$(…)` is not supported" + hint},
	{"echo \"x`ls`\"", "spec:1:8: command substitution `$(…)` is not supported" + hint},
	{"echo ${X:-$(ls)}", "spec:1:11: command substitution `$(…)` is not supported" + hint},
	{"A=$(ls) cmd", "spec:1:3: command substitution `$(…)` is not supported" + hint},
	{"cmd > $(ls)", "spec:1:7: command substitution `$(…)` is not supported" + hint},
	{"cat <(ls; ls)", "spec:1:11: a process substitution `<(…)` holds one pipeline, not a list" + hint},
	{"cat <()", "spec:1:5: an empty process substitution `<(…)` runs nothing"},
	{"ls | tee >(wc -l && ls)", "spec:1:18: `&&` is not part of a pipeline" + hint},
	{"cat <(cat <(ls $(pwd)))", "spec:1:16: command substitution `$(…)` is not supported" + hint},
	{"cat <(nosuch ${x?})", "spec:1:14: x: parameter not set"},
	{"cat" + strings.Repeat(" <(a)", 55), "spec:1:275: more than 54 process substitutions in one stage"},
	{"cat <<EOF\nx\nEOF", "spec:1:5: a here-document is not supported yet" + hint},
	{"cat <<-EOF\n\tx\n\tEOF", "spec:1:5: a here-document is not supported yet" + hint},
	{"cat <<< x", "spec:1:5: a here-string `<<<` is not supported yet" + hint},

	// Arrays and named descriptors.
	{"a=(1 2)", "spec:1:1: an array assignment is not supported"},
	{"a[1]=2", "spec:1:1: an indexed assignment is not supported"},
	{"a=(1 2) cmd", "spec:1:1: inline variables cannot be arrays"},
	{"a[1]=2 cmd", "spec:1:1: inline variables cannot be arrays"},
	{"echo ${a[1]=x}", "spec:1:6: assigning an array element in an expansion is not supported"},
	{"echo ${a[@]:=x}", "spec:1:6: assigning an array element in an expansion is not supported"},
	{"echo ${@:=x}", "spec:1:6: $@: cannot assign in this way"},
	{"echo ${1=x}", "spec:1:6: $1: cannot assign in this way"},
	{"echo {fd}>x", "spec:1:6: a named descriptor `{fd}` is not supported"},
	{"a | exec {fd}<&0", "spec:1:10: a named descriptor `{fd}` is not supported"},

	// The shell parser's syntax errors.
	{"echo 'x' |", "spec:1:10: `|` must be followed by a statement"},
	{"a |& ", "spec:1:3: `|&` must be followed by a statement"},
	{"| a", "spec:1:1: `|` can only immediately follow a statement"},
	{"a | | b", "spec:1:3: `|` must be followed by a statement"},
	{`echo "abc`, "spec:1:6: reached EOF without closing quote `\"`"},
	{"echo 'abc", "spec:1:6: reached EOF without closing quote `'`"},
	{"echo a |\n 'b", "spec:2:2: reached EOF without closing quote `'`"},
	{"echo ${x", "spec:1:6: reached EOF without matching `${` with `}`"},
	{"echo $((1 +", "spec:1:11: `+` must be followed by an expression"},
	{"echo )", "spec:1:6: a command can only contain words and redirects; encountered `)`"},
	{"echo ${x@Z}", "spec:1:10: invalid @ expansion operator `Z`"},
	{`echo "${X@A$}"`, "spec:1:11: invalid @ expansion operator `A$`"},
	{"echo $(( (a)++ ))", "spec:1:13: `++` must follow a name"},
	{"cat <<EOF", "spec:1:5: unclosed here-document `EOF`"},
	{"echo >", "spec:1:6: `>` must be followed by a word"},

	// Carriage returns outside quotes, which the shell parser reads as
	// blanks where bash keeps them in the word.
	{"a | b\r\n", "spec:1:6: a carriage return outside quotes is not supported (CRLF line endings?); quote it or remove it"},
	{"echo 'ok\r' \"ok\r\" $'ok\\r' | # ok\r\n cat \\\r", "spec:2:7: a carriage return outside quotes is not supported (CRLF line endings?); quote it or remove it"},
	{"a && b\r\n", "spec:1:3: `&&` is not part of a pipeline" + hint},
	{"echo 'a\rb' \"a\r\r\nb\"", "spec:1:15: a carriage return before a newline is not supported (CRLF line endings?); write it as $'\\r' or remove it"},

	{"echo a\x00b", "spec:1:7: a NUL byte in the source is not allowed"},
	{"a |\n\\\x00", "spec:2:2: a NUL byte in the source is not allowed"},

	// Line continuations the shell parser misreads.
	{"echo x$\\\n1a", "spec:1:7: a line continuation right after `$` is not supported; join the lines"},
	{"echo \"$\\\nX\" '$\\\n'", "spec:1:7: a line continuation right after `$` is not supported; join the lines"},
	{"echo A # c\\\necho B", "spec:1:11: a backslash at the end of a comment is not supported (the shell parser reads it as a line continuation, bash does not); remove it"},

	// Nothing to run.
	{"", "spec:1:1: empty spec: nothing to run"},
	{"   \t\n  \n", "spec:1:1: empty spec: nothing to run"},
	{"# only a comment", "spec:1:1: empty spec: nothing to run"},
	{"\n# one\n  # two\n", "spec:1:1: empty spec: nothing to run"},

	// Expansion errors, at the expansion.
	{"echo ${x:?msg}", "spec:1:6: x: msg"},
	{"echo a${EMPTY:?is empty} b", "spec:1:7: EMPTY: is empty"},
	{"echo ${x?}", "spec:1:6: x: parameter not set"},
	{`echo "a${x:?}"`, "spec:1:8: x: parameter null or not set"},
	{"a | cmd > ${x:?no file}", "spec:1:11: x: no file"},
	{"A=${x:?unset} cmd", "spec:1:3: x: unset"},
	{"echo $((1/0))", "spec:1:6: division by zero"},
	{"echo a $((N % (N - 3)))", "spec:1:8: division by zero"},
	{"echo $((2 ** -1))", "spec:1:6: exponent less than 0"},
	{"echo $((--0))", "spec:1:9: `--` needs a variable name; for two signs, write `- -`"},
	{"echo $((N + ++1))", "spec:1:13: `++` needs a variable name; for two signs, write `+ +`"},
	{"echo $((a[1] = 2))", "spec:1:14: `=` needs a variable name on its left (gpipe has no arrays)"},
	{"echo ${!UNSET}", "spec:1:6: invalid indirect expansion"},
	{"echo @(a|b)", "spec:1:6: extended globbing operator used without the \"extglob\" option set"},
	{"echo {1..999999999}", "spec:1:6: brace expansion would exceed 16384 elements"},
	{"echo {1..200}{1..200}", "spec:1:6: brace expansion would exceed 16384 elements"},

	// Redirections that bash could not make either.
	{"echo > $EMPTY", "spec:1:8: $EMPTY: ambiguous redirect"},
	{"echo > $UNSET", "spec:1:8: $UNSET: ambiguous redirect"},
	{"echo hi > $X", "spec:1:11: $X: ambiguous redirect"},
	{"cat < {a,b}", "spec:1:7: {a,b}: ambiguous redirect"},
	{"echo >&$X", "spec:1:8: $X: ambiguous redirect"},
	{"echo 2>&x", "spec:1:9: x: ambiguous redirect"},
	{"cat <&in", "spec:1:7: in: ambiguous redirect"},
	{"echo 2>&+1", "spec:1:9: +1: ambiguous redirect"},
	{"echo 2>&1x", "spec:1:9: 1x: ambiguous redirect"},
	{"echo >&-x", "spec:1:6: bash reads `>&-x` as `>&-` followed by the argument `x`; write `>&- x` if that is what you mean, or quote the file name"},
	{"echo 2>&-1", "spec:1:6: bash reads `2>&-1` as `2>&-` followed by the argument `1`; write `2>&- 1` if that is what you mean, or quote the file name"},
	{"cat <&-$X", "spec:1:5: bash reads `<&-$X` as `<&-` followed by the argument `$X`; write `<&- $X` if that is what you mean, or quote the file name"},
	{"echo 9999999999999999999>x", "spec:1:6: file descriptor 9999999999999999999 is out of range"},
	{"echo 2147483648>x", "spec:1:6: file descriptor 2147483648 is out of range"},
	{"echo 2>&99999999999999999999", "spec:1:9: file descriptor 99999999999999999999 is out of range"},

	// Expansions that would outgrow the argument limit are refused before
	// they are built: doubling by assignments, squaring by replacement.
	{"A=aaaaaaaaaaaaaaaa B=$A$A C=$B$B D=$C$C E=$D$D F=$E$E G=$F$F H=$G$G I=$H$H J=$I$I K=$J$J L=$K$K " +
		"M=$L$L N=$M$M O=$N$N P=$O$O Q=$P$P R=$Q$Q S=$R$R T=$S$S U=$T$T V=$U$U W=$V$V cmd",
		"spec:1:127: " + couldBeLong},
	{"echo ${a:=aaaaaaaaaaaaaaaa}${b:=$a$a}${c:=$b$b}${d:=$c$c}${e:=$d$d}${f:=$e$e}${g:=$f$f}${h:=$g$g}" +
		"${i:=$h$h}${j:=$i$i}${k:=$j$j}${l:=$k$k}${m:=$l$l}${n:=$m$m}${o:=$n$n}${p:=$o$o}${q:=$p$p}" +
		"${r:=$q$q}${s:=$r$r}${t:=$s$s}${u:=$t$t}",
		"spec:1:193: " + couldBeLong},
	{"echo ${x:=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa} ${y:=${x//?/$x}} ${z:=${y//?/$y}} ${w:=${z//?/$z}}",
		"spec:1:83: " + couldBeLong},
	{"echo $((x=12345678901234567890)) ${y:=$x$x$x$x$x$x$x$x} ${z:=${y//?/$y}} ${w:=${z//?/$z}}",
		"spec:1:79: " + couldBeLong},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorCases {
		g, err := Parse("spec", tt.src, Config{Env: testEnv})
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error %s", tt.src, short(graphText(g)), tt.want)
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %T is not an *Error: %v", tt.src, err, err)
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%q) error:\n got %s\nwant %s", tt.src, got, tt.want)
		}
		if strings.HasSuffix(err.Error(), ".") {
			t.Errorf("Parse(%q) error ends in a period: %s", tt.src, err)
		}
	}
}

// TestParseLongSourcePositions checks the positions of errors past the
// 16,383rd column and the 262,143rd line, where the shell parser's own
// positions say 0: a long line of words, a long file.
func TestParseLongSourcePositions(t *testing.T) {
	big := strings.Repeat("b", 1<<20)
	cfg := Config{Env: []string{"BIG=" + big}}
	words := "echo " + strings.Repeat("w ", 9000) // the next column is 18006
	many := strings.Repeat("# a comment\n", 300000)
	for _, tt := range []struct {
		file      bool
		src, want string
	}{
		{false, words + "{1..3}$BIG", "spec:1:18006: " + couldBeLong},
		{true, words + "{1..3}$BIG", "f.gp:1:18006: " + couldBeLong},
		{false, words + "$((1/0))", "spec:1:18006: division by zero"},
		{false, words + "&& b", "spec:1:18006: `&&` is not part of a pipeline" + hint},
		{false, words + "| | b", "spec:1:18006: `|` must be followed by a statement"},
		{true, many + "echo $((1/0))", "f.gp:300001:6: division by zero"},
		{true, many + "echo $nosuch", "f.gp:300001:6: unknown parameter $nosuch: declare it (param nosuch) or set it in the environment"},
		{true, many + "echo a |", "f.gp:300001:8: `|` must be followed by a statement"},
	} {
		var err error
		if tt.file {
			_, err = ParseFile("f.gp", tt.src, nil, cfg)
		} else {
			_, err = Parse("spec", tt.src, cfg)
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("error for %q…%q:\n got %v\nwant %s", tt.src[:10], tt.src[len(tt.src)-10:], err, tt.want)
		}
	}
}

// TestParseArgMax checks the limit on a stage's arguments and assignments
// with an environment holding large values.
func TestParseArgMax(t *testing.T) {
	big := strings.Repeat("b", 1<<20)
	near := strings.Repeat("n", argMax-100_000)
	// What leaves 100 000 bytes after 31 stages `echo "$BIG"` and `echo "$FILL"`.
	fill := strings.Repeat("f", pipelineArgMax-31*int(argCost(len("echo"))+argCost(len(big)))-int(argCost(len("echo")))-int(argCost(0))-100_000)
	cfg := Config{Env: []string{"BIG=" + big, "NEAR=" + near, "FILL=" + fill, "HOME=/home/gp"}}
	for _, tt := range []struct{ src, want string }{
		// Accepted: each stage is under the limit on its own.
		{"echo $BIG | echo $BIG", ""},
		{"A=$BIG cmd", ""},
		{"echo $NEAR {1..5000}", ""},
		// The second word could, and would, go over.
		{"echo $BIG $BIG", "spec:1:11: " + couldBeLong},
		{"echo $BIG | A=$BIG B=$BIG cmd", "spec:1:22: " + couldBeLong},
		{"echo $BIG ${x:-$BIG}", "spec:1:16: " + couldBeLong}, // at the $BIG that is too much
		// Its bytes fit, but not with a NUL and a pointer for each field.
		{"echo $NEAR {1..16000}", "spec:1:12: " + tooLong},
		{"cmd > $BIG$BIG$BIG", "spec:1:7: " + couldBeLong},
		{"echo ${BIG//b/bb}", "spec:1:6: " + couldBeLong},
		{"echo ${BIG@Q}", "spec:1:6: " + couldBeLong},
		{"echo {1..3}$BIG", "spec:1:6: " + couldBeLong},
		// A long pattern over a long value: seconds to hours of matching.
		{"echo ${x=aaaaaaaaaaaa}${y=${x//?/$x}}${z=${y//?/$y}} ${w=${z/$z}}", "spec:1:58: " + tooSlow},
		{"echo ${x=aaaaaaaaaaaa}${y=${x//?/$x}}${z=${y//?/$y}} ${z##$z}", "spec:1:54: " + tooSlow},
		{"echo ${x=aaaaaaaaaaaa}${y=${x//?/$x}}${z=${y//?/$y}} ${z%a}", ""},
		{"echo ${x=aaaaaaaaaaaa}${y=${x//?/$x}}${z=${y//?/$y}} ${z^^$z}", "spec:1:54: " + tooSlow},
		// The stages together: 31 of them take all but 1 MiB of 32 MiB.
		{strings.Repeat(`echo "$BIG" | `, 30) + "cat", ""},
		{strings.Repeat(`echo "$BIG" | `, 40) + "cat", "spec:1:441: " + pipelineCouldBeLong},
		{strings.Repeat(`echo "$BIG" | `, 31) + "echo {1..99999}", "spec:1:440: brace expansion would exceed 16384 elements"},
		{strings.Repeat(`echo "$BIG" | `, 31) + `echo "$FILL" {1..5000}`, ""},
		{strings.Repeat(`echo "$BIG" | `, 31) + `echo "$FILL" {1..16000}`, "spec:1:448: " + pipelineTooLong},
	} {
		g, err := Parse("spec", tt.src, cfg)
		switch {
		case err == nil && tt.want != "":
			t.Errorf("Parse(%q) accepted, want %s", tt.src, tt.want)
		case err != nil && err.Error() != tt.want:
			t.Errorf("Parse(%q) error:\n got %v\nwant %s", tt.src, err, tt.want)
		case err == nil:
			checkGraph(t, tt.src, g)
		}
	}
}

// TestParseLikeBash expands the words of the accepted tables with bash
// itself and compares: bash is the oracle for what a stage's arguments are.
func TestParseLikeBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for _, words := range []string{
		`'a  b' "c  d" 'it''s' "say \"hi\"" '' "" e\ \ f a\\b "a\\b" "a\b" 'a\\b' \$X "\$X" \a`,
		`$'a\tb' $'\x41' $'it\'s' $"x" '|' "&&" \; a\|b`,
		`$X "$X" ${X} "${X}"x $EMPTY "$EMPTY" $UNSET a$EMPTY`,
		`${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${X:-d} ${UNSET-d} "${UNSET:-a b}" ${UNSET:-$N}`,
		`${X:+alt} ${EMPTY:+alt} ${#X} ${X#x} ${X%y} ${X/ /_} ${X// /} ${X^^} ${X^} ${X:2} ${X:0:1} ${X: -1} ${!REF} ${!RE*} "${X@Q}"`,
		`${NEW:=v} $NEW "${EMPTY:=e}" $EMPTY`,
		`$((1 + 2)) $((N * N)) $(( (1<<4) | 1 )) $((-7 / 2)) $((7 % -3)) $((2**10)) $((N > 2 ? 10 : 20)) $((UNSET + 1))`,
		`$((N++ + N)) $N $((x = 5, x * 2)) $x $((2**64)) $((-2**63 / -1))`,
		`{a,b}c x{1..3} {3..1} {a..c} {1..10..4} {01..03} {a,b}{1,2} {a,b\,c} {x} {a..} "{a,b}" '{a,b}' \{a,b} {`,
		`~ ~/d "~" '~' \~ a~ ~/"$X" *.go ? [ab]`,
		`${U:-\$X} "${U:-\$X}" ${U:-a\\b} "${U:-a\\b}" ${X/x/\\} "${X/x/\\}" "${X/x/\*}" ${U:-\"} "${U:-\"}" "${U:-a\ b}" ${U:-\~} "${X/x/\a}" "${X/x/\$}"`,
		`0=a B=$X`,
		`x=~/a:~/b:c~:~ x+=~ "x"=~/y x=~"q" x=~\/y x=\~/y x=a\:~/y x=~nosuchuser/z 1x=~/y --opt=~/y a:~/y`,
	} {
		src := `printf '%s\0' ` + words
		g, err := Parse("spec", src, Config{Env: testEnv})
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", src)
		cmd.Env = testEnv
		cmd.Dir = t.TempDir() // empty: globs match nothing, as without ReadDir
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("bash -c %q: %v", src, err)
			continue
		}
		want := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if len(out) == 0 {
			want = nil
		}
		if got := g.Stages[0].Args[2:]; !reflect.DeepEqual(got, want) {
			t.Errorf("words %s:\n gpipe %q\n  bash %q", words, got, want)
		}
	}
}

// TestParseEnvLikeBash compares the stages' assignments with the
// environment bash gives a command.
func TestParseEnvLikeBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	env, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env")
	}
	for _, assigns := range []string{
		`A=a\ b B=\$X C=\\ D=\a E=\~ F="a\ b" G=a\\\\b H=~/a\ b I='x y' J=$X K=* L=`,
		`A=a:~/x:~ B=~\/y C=~/"q" D=x:~"q" HOME=/n E=~ F=a:~`,
		`N=1 M=$N N+=2 O=${X/x/\\} P=${U:-\$X} Q="${U:-a\ b}" R=${U:-a\ b}`,
	} {
		src := assigns + " " + env + " -0"
		g, err := Parse("spec", src, Config{Env: testEnv})
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", src)
		cmd.Env = testEnv
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("bash -c %q: %v", src, err)
			continue
		}
		want := map[string]string{}
		for _, kv := range strings.Split(string(out), "\x00") {
			if name, value, ok := strings.Cut(kv, "="); ok {
				want[name] = value
			}
		}
		got := map[string]string{}
		for _, kv := range g.Stages[0].Env {
			name, value, _ := strings.Cut(kv, "=")
			got[name] = value // the last one counts, as in the process
		}
		for name, value := range got {
			if want[name] != value {
				t.Errorf("%s: %s=%q, bash says %q", assigns, name, value, want[name])
			}
		}
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{(&Stage{ID: 1, Args: l("grep", "x")}).Name(), "stage 2 (grep)"},
		{(&Stage{ID: 0}).Name(), "stage 1"},
		{TransportAuto.String(), "auto"},
		{TransportShm.String(), "shm"},
		{Transport(9).String(), "Transport(9)"},
		{(&Error{Name: "f.gp", Pos: Pos{2, 7}, Text: "bad"}).Error(), "f.gp:2:7: bad"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
