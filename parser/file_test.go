package parser

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fileCfg is the configuration the pipeline file tests parse with.
var fileCfg = Config{Env: testEnv}

// fileErrorCases are refused pipeline files, with the parameters given on
// the command line, and their exact messages.
var fileErrorCases = []struct {
	name string
	src  string
	args []string
	want string
}{
	// par @NAME runs a named stage that is wired nowhere else.
	{"par of a wired stage", "up: tr a-z A-Z\n@up | wc -l\nseq 3 | par -j 2 @up", nil,
		"f.gp:3:9: par @up: its copies run the command named at 1:1, which is also wired at 2:5: name two stages"},
	{"par of itself", "p: par -j 2 @p", nil, "f.gp:1:1: par @p: a par stage cannot run itself"},
	// The shell parser's syntax errors, and what a file is not.
	{"syntax error", "# doc\nseq 3 |\n", nil, "f.gp:2:7: `|` must be followed by a statement"},
	{"unclosed quote", "param p=1\necho 'x |\n  wc", nil, "f.gp:2:6: reached EOF without closing quote `'`"},
	{"semicolon between pipelines", "a | b; c | d", nil,
		"f.gp:1:6: `;` is not part of a pipeline file: its pipelines all run at once, as one graph; put each on a line of its own"},
	{"and between commands", "a\nb && c", nil, "f.gp:2:3: `&&` is not part of a pipeline" + hint},
	{"background job", "a &\nb", nil, "f.gp:1:3: `&` (a background job) is not part of a pipeline" + hint},
	{"command substitution", "echo $(ls)", nil, "f.gp:1:6: command substitution `$(…)` is not supported" + hint},
	{"NUL byte", "seq 3 |\n wc\x00 -l", nil, "f.gp:2:4: a NUL byte in the source is not allowed"},
	{"CRLF line endings", "a | b\r\nc\r\n", nil,
		"f.gp:1:6: a carriage return outside quotes is not supported (CRLF line endings?); quote it or remove it"},

	// Nothing to run.
	{"empty file", "", nil, "f.gp:1:1: no pipeline: nothing to run"},
	{"blank lines only", "\n\n  \n", nil, "f.gp:1:1: no pipeline: nothing to run"},
	{"comments only", "#!/usr/bin/env -S gpipe -f\n# just a comment\n", nil, "f.gp:1:1: no pipeline: nothing to run"},
	{"header only", "# doc\nparam x=1\n", nil, "f.gp:2:10: no pipeline: nothing to run"},
	{"options only", "option --grace=5s\n", nil, "f.gp:1:18: no pipeline: nothing to run"},
	{"header ending in a backslash", "param A=0\\", nil, "f.gp:1:11: no pipeline: nothing to run"},

	// The header.
	{"param after a pipeline", "param a=1\nseq $a\nparam b=2\n", nil,
		"f.gp:3:1: `param` goes in the file's header, before the first pipeline"},
	{"option after a pipeline", "a | b\noption --status", nil,
		"f.gp:2:1: `option` goes in the file's header, before the first pipeline"},
	{"param declared twice", "param x\nparam x=2\na $x", l("x=1"), "f.gp:2:7: parameter x is declared twice (first at 1:7)"},
	{"param name starting with a digit", "param 1x\na", nil,
		`f.gp:1:7: "1x" is not a parameter name (letters, digits and _, not starting with a digit)`},
	{"param name with a dash", "param in-file=x\na", nil,
		`f.gp:1:7: "in-file" is not a parameter name (letters, digits and _, not starting with a digit)`},
	{"param name with an expansion", "param p$X=1\na", nil,
		`f.gp:1:7: "p$X" is not a parameter name (letters, digits and _, not starting with a digit)`},
	{"param without a name before =", "param =1\na", nil,
		`f.gp:1:7: "" is not a parameter name (letters, digits and _, not starting with a digit)`},
	{"param name quoted", "param \"p\"=1\na", nil,
		"f.gp:1:7: a parameter's name comes first: `param NAME` or `param NAME=DEFAULT`"},
	{"param with two names", "param x y\na", nil,
		"f.gp:1:9: a parameter is declared as `param NAME` or `param NAME=DEFAULT`, one per line; quote a default with blanks in it"},
	{"param with a blank in its default", "param x=1 2\na", nil,
		"f.gp:1:11: a parameter is declared as `param NAME` or `param NAME=DEFAULT`, one per line; quote a default with blanks in it"},
	{"param alone", "param\na", nil,
		"f.gp:1:1: a parameter is declared as `param NAME` or `param NAME=DEFAULT`, one per line; quote a default with blanks in it"},
	{"param redirected", "param x >f\na", nil, "f.gp:1:9: a redirection of a `param` line means nothing"},
	{"assignment before param", "A=1 param x\na", nil, "f.gp:1:1: an assignment before `param` means nothing"},
	{"option value: unset parameter", "option --grace=${u:?say how long}\na", nil, "f.gp:1:16: u: say how long"},
	{"option value: arithmetic error", "option --grace=$((1/0))\na", nil, "f.gp:1:8: division by zero"},
	{"option value: process substitution", "option --grace <(x)\na", nil,
		"f.gp:1:16: a process substitution cannot be a value here"},
	{"param default: unset parameter", "param x=${u:?no default}\na", nil, "f.gp:1:9: u: no default"},
	{"param default: process substitution", "param x=<(a)\na", nil,
		"f.gp:1:9: a process substitution cannot be a value here"},

	// Parameters on the command line: no position.
	{"unknown parameter, with a suggestion", "param top=10\nhead -n $top", l("tpo=3"),
		"f.gp: unknown parameter tpo (did you mean top?)"},
	{"unknown parameter, without a suggestion", "param top=10\nparam input\ncat $input | head -n $top", l("input=f", "zzz=3"),
		"f.gp: unknown parameter zzz (the file declares top, input)"},
	{"unknown parameter, none declared", "a", l("x=3"), "f.gp: unknown parameter x: the file declares none"},
	{"parameter without a value", "param top=10\nhead -n $top", l("top"),
		`f.gp: "top" is not a parameter: give parameters as NAME=VALUE`},
	{"parameter with a bad name", "param top=10\nhead -n $top", l("1x=2"),
		`f.gp: "1x=2" is not a parameter: give parameters as NAME=VALUE`},
	{"missing parameter with its description", "param input   # the file to read\ncat $input", nil,
		"f.gp: missing parameter input (the file to read): give it as input=VALUE"},
	{"missing parameter", "param input\ncat $input", nil, "f.gp: missing parameter input: give it as input=VALUE"},
	{"parameter given twice", "param top=10\nhead -n $top", l("top=1", "top=2"), "f.gp: parameter top is given twice"},

	// Unknown parameters in the body, as set -u would.
	{"unknown $tpo", "param top=10\nhead -n $tpo", nil, "f.gp:2:9: unknown parameter $tpo (did you mean $top?)"},
	{"unknown ${tpo%x}", "param top=10\nhead -n ${tpo%x}", nil, "f.gp:2:9: unknown parameter $tpo (did you mean $top?)"},
	{"unknown in an assignment", "param top=10\nA=$tpo head", nil, "f.gp:2:3: unknown parameter $tpo (did you mean $top?)"},
	{"unknown in a redirection", "param top=10\nhead > $tpo", nil, "f.gp:2:8: unknown parameter $tpo (did you mean $top?)"},
	{"unknown in a process substitution", "param top=10\nhead <(cat $tpo)", nil,
		"f.gp:2:12: unknown parameter $tpo (did you mean $top?)"},
	{"unknown, nothing close", "param top=10\nhead -n $zzzzz", nil,
		"f.gp:2:9: unknown parameter $zzzzz: declare it (param zzzzz) or set it in the environment"},

	// Named stages and references.
	{"unknown stage with a suggestion", "name: cat\n@nmae | wc", nil, "f.gp:2:1: unknown stage @nmae (did you mean @name?)"},
	{"unknown stage, names listed", "a: cat\nbb: cat\n@zzzz | wc", nil, "f.gp:3:1: unknown stage @zzzz (the file names @a, @bb)"},
	{"unknown stage, none named", "seq 3 | @zzzz", nil, "f.gp:1:9: unknown stage @zzzz: name a stage with `zzzz: COMMAND…`"},
	{"reference with words", "name: cat\n@name -n | wc", nil,
		"f.gp:2:1: a reference to a stage takes no words or redirections: put them in the stage's definition (name: …)"},
	{"reference with a redirection", "name: cat\nwc | @name > f", nil,
		"f.gp:2:6: a reference to a stage takes no words or redirections: put them in the stage's definition (name: …)"},
	{"not a reference", "@a-b | c", nil, `f.gp:1:1: "@a-b" is not a reference: write @NAME or @NAME:FD`},
	{"descriptor out of range", "a: x\n@a:99999999999 | b", nil, "f.gp:2:1: descriptor 99999999999 is out of range"},
	{"descriptor of @stdin", "@stdin:3 | b", nil, "f.gp:1:1: @stdin has no descriptors of its own"},
	{"label without a command", "name: | wc", nil, "f.gp:1:1: `name:` names no command: write `name: COMMAND…`"},
	{"duplicate label", "a: x\nseq 3 | a: y", nil, "f.gp:2:9: stage name a is used twice (first at 1:1)"},
	{"label named stdin", "stdin: x", nil, "f.gp:1:1: stdin is gpipe's own: name the stage otherwise"},
	{"label named stdout", "x | stdout: y", nil, "f.gp:1:5: stdout is gpipe's own: name the stage otherwise"},
	{"label named fifo", "fifo: x", nil, "f.gp:1:1: fifo names a transport: name the stage otherwise"},
	{"reference alone", "a: x\n@a", nil, "f.gp:2:1: a reference alone wires nothing: put it in a pipeline (@a | …)"},
	{"|& after a reference", "a: x\n@a |& b", nil,
		"f.gp:2:4: `|&` needs a command right before it; redirect a named stage's stderr in its definition"},

	// Transport marks.
	{"two marks in a row", "a | @fifo | @pipe | b", nil, "f.gp:1:13: two transport marks in a row"},
	{"mark at the start", "@fifo | a", nil, "f.gp:1:1: a transport mark needs a stage on each side"},
	{"mark at the end", "a | @shm", nil, "f.gp:1:5: a transport mark needs a stage on each side"},
	{"mark alone", "a\n@mem", nil, "f.gp:2:1: a transport mark needs a stage on each side"},
	{"mark with words", "a | @fifo @pipe | b", nil, "f.gp:1:5: a transport mark stands alone between two commands: `a | @fifo | b`"},
	{"mark at the far end of <(…)", "paste <(@fifo | seq 3) -", nil, "f.gp:1:9: a transport mark needs a stage on each side"},
	{"mark at the far end of >(…)", "x | tee >(wc -l | @fifo)", nil, "f.gp:1:19: a transport mark needs a stage on each side"},
	{"|& before a mark", "a | @fifo |& b", nil,
		"f.gp:1:11: `|&` needs a command right before it; redirect a named stage's stderr in its definition"},

	// Wiring.
	{"cycle", "a: cat | b: cat\n@b | @a", nil, "f.gp:1:8: cycle: stage 1 (a: cat) → stage 2 (b: cat) → stage 1 (a: cat)"},
	{"cycle through two commands", "a: cat | b: sort\n@b | @a", nil, "f.gp:1:8: cycle: stage 1 (a: cat) → stage 2 (b: sort) → stage 1 (a: cat)"},
	{"stage feeding itself", "x: a\n@x:3 | @x", nil, "f.gp:2:6: cycle: stage 1 (x: a) feeds itself"},
	{"input fed twice", "a: cat\nx | @a\ny | @a", nil,
		"f.gp:3:3: stage 1 (a: cat): stdin is fed twice (at 2:3 and here): join the inputs with merge or cat, or feed another descriptor (@NAME:3)"},
	{"input fed twice by references", "a: x\nb: y\n@a | @b\n@a | @b", nil,
		"f.gp:4:4: stage 2 (b: y): stdin is fed twice (at 3:4 and here): join the inputs with merge or cat, or feed another descriptor (@NAME:3)"},
	{"input fed by @stdin and a pipe", "a: cat\n@stdin | @a\nx | @a", nil, "f.gp:2:10: stage 1 (a: cat): stdin is fed twice (at 3:3 and here)"},
	{"input fed by @stdin twice", "a: cat\n@stdin | @a\n@stdin | @a", nil, "f.gp:3:10: stage 1 (a: cat): stdin is fed twice (at 2:10 and here)"},
	{"redirected stdout read", "a: cat > f\n@a | wc", nil, "f.gp:2:1: @a: stdout is wired twice: redirected in its definition at 1:8, and here"},
	{"redirected stdin fed", "a: cat < f\nx | @a", nil, "f.gp:2:5: @a: stdin is wired twice: redirected in its definition at 1:8, and here"},
	{"redirected fd 2 read", "a: x 2>&1\n@a:2 | y", nil, "f.gp:2:1: @a: fd 2 is wired twice: redirected in its definition at 1:6, and here"},
	{"redirected stdout to @stdout", "a: x > f\nb | @a\n@a | @stdout", nil,
		"f.gp:3:1: @a: stdout is wired twice: redirected in its definition at 1:6, and here"},
	{"@stdin | @stdout", "@stdin | @stdout", nil, "f.gp:1:1: `@stdin | @stdout` runs nothing"},
	{"@stdout read", "@stdout | x", nil, "f.gp:1:1: @stdout is where output goes: nothing reads from it"},
	{"@stdout in the middle", "a | @stdout | x", nil, "f.gp:1:5: @stdout is where output goes: nothing reads from it"},
	{"@stdin written", "x | @stdin", nil, "f.gp:1:5: @stdin is where input comes from: nothing writes to it"},
	{"@stdin to fd 3", "a: x\n@stdin | @a:3", nil, "f.gp:2:10: @stdin feeds a stage's stdin only"},
	{"fd 3 to @stdout", "a: x\n@a:3 | @stdout", nil, "f.gp:2:1: @stdout takes a stage's stdout only"},

	// Expansion errors in the body.
	{"unset with a message", "seq ${n:?give n}", nil, "f.gp:1:5: n: give n"},
	{"division by zero", "param n=0\nseq $((10 / n))", nil, "f.gp:2:5: division by zero"},
}

func TestParseFileErrors(t *testing.T) {
	for _, tt := range fileErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile("f.gp", tt.src, tt.args, fileCfg)
			if err == nil {
				t.Fatalf("ParseFile(%q, %q) =\n%s\nwant error %s", tt.src, tt.args, topology(f.Graph), tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("ParseFile(%q) error %T is not an *Error: %v", tt.src, err, err)
			} else if pe.Name != "f.gp" || pe.Text == "" {
				t.Errorf("ParseFile(%q) error %#v: want name f.gp and a text", tt.src, pe)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("ParseFile(%q, %q) error:\n got %s\nwant %s", tt.src, tt.args, got, tt.want)
			}
			if strings.HasSuffix(err.Error(), ".") {
				t.Errorf("ParseFile(%q) error ends in a period: %s", tt.src, err)
			}
		})
	}
}

// TestReadHeader checks that the header is read without the body's
// parameters: a missing or unknown one is for ParseFile, but the header's
// own problems are ReadHeader's too.
func TestReadHeader(t *testing.T) {
	src := "param input\nparam top=10\ncat $input | head -n $top | @nosuch"
	h, err := ReadHeader("f.gp", src, fileCfg)
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if h.Graph != nil || len(h.Params) != 2 || h.Params[0].Name != "input" || !h.Params[0].Required || h.Params[1].Default != "10" {
		t.Errorf("ReadHeader = %+v", h)
	}
	for _, tt := range []struct{ src, want string }{
		{"", "f.gp:1:1: no pipeline: nothing to run"},
		{"param x\nparam x\na", "f.gp:2:7: parameter x is declared twice (first at 1:7)"},
		{"a |", "f.gp:1:3: `|` must be followed by a statement"},
		{"a\nparam x", "f.gp:2:1: `param` goes in the file's header, before the first pipeline"},
	} {
		if _, err := ReadHeader("f.gp", tt.src, fileCfg); err == nil || err.Error() != tt.want {
			t.Errorf("ReadHeader(%q) error = %v, want %s", tt.src, err, tt.want)
		}
	}
}

// TestParseFileHeader checks what the header tells: the doc comment, the
// parameters with their defaults and descriptions, the options, and where
// each is.
func TestParseFileHeader(t *testing.T) {
	src := `#!/usr/bin/env -S gpipe -f
# Count the words of a file.
#  Indented line.

# Not the doc: after a blank line.
param top=10      # how many words to print
param input       # the file to read
param sep="a b"
param home=~/x
param mixed='x'y"$N"
param empty=
option --status --grace=5s
option --buffer "1 MiB"  # a comment
cat $input | tr -s "$sep" '\n' | sort | uniq -c | sort -rn | head -n $top > $home/$mixed$empty
`
	f, err := ParseFile("f.gp", src, l("input=in.txt"), fileCfg)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if want := "Count the words of a file.\n Indented line."; f.Doc != want {
		t.Errorf("Doc = %q, want %q", f.Doc, want)
	}
	wantParams := []Param{
		{Pos: Pos{6, 7}, Name: "top", Default: "10", Doc: "how many words to print"},
		{Pos: Pos{7, 7}, Name: "input", Required: true, Doc: "the file to read"},
		{Pos: Pos{8, 7}, Name: "sep", Default: "a b"},
		{Pos: Pos{9, 7}, Name: "home", Default: "/home/gp/x"},
		{Pos: Pos{10, 7}, Name: "mixed", Default: "xy3"},
		{Pos: Pos{11, 7}, Name: "empty"},
	}
	if !reflect.DeepEqual(f.Params, wantParams) {
		t.Errorf("Params =\n%+v\nwant\n%+v", f.Params, wantParams)
	}
	wantOptions := []Option{{Pos{12, 8}, "--status"}, {Pos{12, 17}, "--grace=5s"}, {Pos{13, 8}, "--buffer"}, {Pos{13, 17}, "1 MiB"}}
	if !reflect.DeepEqual(f.Options, wantOptions) {
		t.Errorf("Options = %+v, want %+v", f.Options, wantOptions)
	}
	if f.Name != "f.gp" || f.Graph == nil || f.Graph.Name != "f.gp" {
		t.Fatalf("Name %q, graph %+v", f.Name, f.Graph)
	}
	want := `
1 cat in.txt
2 tr -s a b \n
3 sort
4 uniq -c
5 sort -rn
6 head -n 10
1.1 → 2.0
2.1 → 3.0
3.1 → 4.0
4.1 → 5.0
5.1 → 6.0
order [1 2 3 4 5 6]`
	if got := topology(f.Graph); strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Errorf("graph:\n%s\nwant:\n%s", got, want)
	}
	if st := f.Graph.Stages[5]; len(st.Redirs) != 1 || st.Redirs[0].Path != "/home/gp/x/xy3" {
		t.Errorf("head redirections = %+v", st.Redirs)
	}
	h, err := ReadHeader("f.gp", src, fileCfg)
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if h.Graph != nil || h.Doc != f.Doc || !reflect.DeepEqual(h.Params, f.Params) || !reflect.DeepEqual(h.Options, f.Options) {
		t.Errorf("ReadHeader = %+v, ParseFile = %+v", h, f)
	}

	// No doc without comment lines right at the top.
	for _, src := range []string{"\n# late\na", "a # c\n", "#!/bin/gpipe\n\n# late\na"} {
		if f, err := ParseFile("f.gp", src, nil, fileCfg); err != nil || f.Doc != "" {
			t.Errorf("ParseFile(%q) doc = %q, %v", src, f.Doc, err)
		}
	}
	// Given values win over defaults, and may be empty.
	f, err = ParseFile("f.gp", "param a=1\nparam b=2\necho $a $b", l("b=", "a=x"), fileCfg)
	if err != nil || !reflect.DeepEqual(f.Graph.Stages[0].Args, l("echo", "x", "")) {
		t.Errorf("a=x b= : %v %+v", err, f)
	}
}

// TestParseFileGraphs checks the graphs of files: several pipelines,
// named stages and references, the tee stages gpipe adds, gpipe's own
// stdin and stdout, and the descriptors references name.
func TestParseFileGraphs(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      string
	}{
		{"two pipelines", "# two\nseq 3 | wc -l\n\nseq 4 |\n  cat", `
1 seq 3
2 wc -l
3 seq 4
4 cat
1.1 → 2.0
3.1 → 4.0
order [1 2 3 4]`},
		{"a reference before its definition", "@gen | sort\ngen: seq 3", `
1 sort
2 seq 3
2.1 → 1.0
order [2 1]`},
		// An output read in three places is three edges from one port,
		// and gpipe's stdout taking it too is said apart: the planner
		// adds the tees (stage.AddRelays, tested there).
		{"named stage read in 3 places", "errs: gen 10 | count\n@errs | sink\n@errs | head -n 1", `
1 gen 10
2 count
3 sink
4 head -n 1
1.1 → 2.0
1.1 → 3.0
1.1 → 4.0
order [1 2 3 4]`},
		// par @NAME: the named stage's words are par's command, and it is
		// no stage of its own; the stages after it are numbered down.
		{"par runs a named stage", "up: tr a-z A-Z 2>>err\nseq 3 | par -j 2 @up | sort", `
1 seq 3
2 par -j 2 -- tr a-z A-Z
3 sort
1.1 → 2.0
2.1 → 3.0
order [1 2 3]`},
		{"@stdin read once", "@stdin | a | @stdout", `
1 a
order [1]`},
		{"a descriptor of a named stage", "prog: make\n@prog:3 | cat\n@prog:2 | a: wc -l\n@prog | @a:3", `
1 make
2 cat
3 wc -l
1.3 → 2.0
1.2 → 3.0
1.1 → 3.3
order [1 2 3]`},
		{"a named stage inside a process substitution", "x | tee >(a: wc -l)\n@a | sort", `
1 x
2 tee /dev/fd/63
3 wc -l [in 2]
4 sort
1.1 → 2.0
2.63(/dev/fd/63) → 3.0
3.1 → 4.0
order [1 2 3 4]`},
		{"labels with assignments and redirections", "A=1 a: cat 2>/dev/null\n@a | b", `
1 cat
2 b
1.1 → 2.0
order [1 2]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile("f.gp", tt.src, nil, fileCfg)
			if err != nil {
				t.Fatalf("ParseFile(%q): %v", tt.src, err)
			}
			if got, want := strings.TrimSpace(topology(f.Graph)), strings.TrimSpace(tt.want); got != want {
				t.Errorf("ParseFile(%q):\n%s\nwant:\n%s", tt.src, got, want)
			}
			checkFileGraph(t, tt.src, f.Graph)
		})
	}
}

// TestParseFileRelaysLeft checks what the parser leaves to the planner's
// tees: the ports gpipe's stdout takes while stages read them too, and
// the stages that all read gpipe's stdin, with positions in the source.
func TestParseFileRelaysLeft(t *testing.T) {
	f, err := ParseFile("f.gp", "a: seq 3\n@a | @stdout\n@a | wc", nil, fileCfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Graph.StdoutFrom, []Port{{Stage: 0, FD: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("StdoutFrom %+v, want %+v", got, want)
	}
	f, err = ParseFile("f.gp", "@stdin | a\n@stdin | b", nil, fileCfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range f.Graph.StdinReaders {
		got = append(got, fmt.Sprintf("%d.%d at %v", e.To.Stage+1, e.To.FD, e.Pos))
	}
	if want := l("1.0 at 1:1", "2.0 at 2:1"); !reflect.DeepEqual(got, want) {
		t.Errorf("StdinReaders %q, want %q", got, want)
	}
	for _, st := range f.Graph.Stages {
		if st.Added != "" {
			t.Errorf("%s: added by the parser: %q", st.Name(), st.Added)
		}
	}
	// One reader of gpipe's stdin needs no tee.
	f, err = ParseFile("f.gp", "@stdin | a | @stdout", nil, fileCfg)
	if err != nil || f.Graph.StdinReaders != nil {
		t.Errorf("one reader: %v, StdinReaders %+v", err, f.Graph.StdinReaders)
	}
}

// TestParseFileTransports checks that marks set the transport of the edge
// they stand on, a process substitution's too, whose stage still gets the
// path /dev/fd/N: naming a FIFO is the planner's business (engine).
func TestParseFileTransports(t *testing.T) {
	src := "a | @fifo | b\nc | @shm | d |\n  @mem | e\nf | @pipe | g | h\ni |& @fifo | j\nx: k\n@x | @fifo | l"
	f, err := ParseFile("f.gp", src, nil, fileCfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range f.Graph.Edges {
		got = append(got, fmt.Sprintf("%d→%d %v@%v", e.From.Stage+1, e.To.Stage+1, e.Transport, e.Pos))
	}
	want := l("1→2 fifo@1:3", "3→4 shm@2:3", "4→5 mem@2:14", "6→7 pipe@4:3", "7→8 auto@4:15", "9→10 fifo@5:3", "11→12 fifo@7:4")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
	if r := f.Graph.Stages[8].Redirs; len(r) != 1 || r[0] != (Redirect{Pos: Pos{5, 3}, FD: 2, Op: RedirDup, DupFD: 1}) {
		t.Errorf("|& before a mark: redirections %+v", r)
	}

	for _, tt := range []struct{ src, want string }{
		{"seq 9 | tee >(@fifo | wc -l) >(wc -c)", `
1 seq 9
2 tee /dev/fd/63 /dev/fd/62
3 wc -l [in 2]
4 wc -c [in 2]
1.1 → 2.0
2.63(/dev/fd/63) → 3.0 fifo
2.62(/dev/fd/62) → 4.0
order [1 2 3 4]`},
		{"paste <(seq 3 | @fifo) <(seq 4 | @pipe) -\ncat <(seq 5 | @fifo)", `
1 paste /dev/fd/63 /dev/fd/62 -
2 seq 3 [in 1]
3 seq 4 [in 1]
4 cat /dev/fd/63
5 seq 5 [in 4]
2.1 → 1.63(/dev/fd/63) fifo
3.1 → 1.62(/dev/fd/62) pipe
5.1 → 4.63(/dev/fd/63) fifo
order [2 3 1 5 4]`},
	} {
		f, err := ParseFile("f.gp", tt.src, nil, fileCfg)
		if err != nil {
			t.Errorf("ParseFile(%q): %v", tt.src, err)
			continue
		}
		var b strings.Builder
		b.WriteString(topology(f.Graph))
		got := strings.TrimSpace(b.String())
		// The transports, after each edge's line.
		for _, e := range f.Graph.Edges {
			if e.Transport == TransportAuto {
				continue
			}
			line := fmt.Sprintf("%d.%d", e.From.Stage+1, e.From.FD)
			if e.From.Name != "" {
				line += "(" + e.From.Name + ")"
			}
			line += fmt.Sprintf(" → %d.%d", e.To.Stage+1, e.To.FD)
			if e.To.Name != "" {
				line += "(" + e.To.Name + ")"
			}
			got = strings.Replace(got, line+"\n", line+" "+e.Transport.String()+"\n", 1)
		}
		if want := strings.TrimSpace(tt.want); got != want {
			t.Errorf("ParseFile(%q):\n%s\nwant:\n%s", tt.src, got, want)
		}
	}
}

// injectionValues are parameter values that would run something, split,
// glob, expand or redirect if they were read as shell code, or not quoted.
var injectionValues = []string{
	`it's`, `say "hi"`, `'`, `"`, `$(rm -rf ~)`, "`rm -rf ~`", `a; rm -rf ~`, `a | wc`, `a && b`, `a || b`,
	`*`, `?`, `[ab]`, `*.go`, `a*`, "a\nb", "\n", `-rf`, `--`, ` a  b `, "\t", ``, `~`, `~/x`, `{a,b}`, `{1..3}`,
	`$HOME`, `${X}`, `$((1+1))`, `\`, `a\ b`, `>f`, `2>&1`, `<(ls)`, `#c`, `@stdin`, `@fifo`, `x:`, `!`, `&`, `%`, `=`,
}

// TestParseFileInjection checks that a parameter's value is data: one
// literal argument, whatever it holds and however the body writes it.
func TestParseFileInjection(t *testing.T) {
	dir := t.TempDir()
	// Files that every glob among the values would match.
	for _, name := range []string{"a", "b", "a.go", "ab", "x:", "-rf"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Env: append(append([]string(nil), testEnv...), "PWD="+dir), ReadDir: os.ReadDir}
	// The globs do match without the quoting: the directory is used.
	if g, err := Parse("spec", "echo * ?", cfg); err != nil || len(g.Stages[0].Args) != 9 {
		t.Fatalf("globbing in %s does not work: %v %+v", dir, err, g)
	}
	src := `param p
echo $p "$p" ${p} "${p}" x$p.y "x${p}y" $p$p
cat > $p 2>>"$p" <$p
A=$p B="$p" C=x$p cmd $p
cat <(echo $p) < <(cat < $p) >(wc $p)
$p | cat
echo ${p:+$p} ${#p} ${p^^}
`
	for _, v := range injectionValues {
		f, err := ParseFile("f.gp", src, l("p="+v), cfg)
		if err != nil {
			t.Errorf("p=%q: %v", v, err)
			continue
		}
		g := f.Graph
		checkFileGraph(t, src, g)
		argsOf := func(i int) []string { return g.Stages[i].Args }
		if got, want := argsOf(0), l("echo", v, v, v, v, "x"+v+".y", "x"+v+"y", v+v); !reflect.DeepEqual(got, want) {
			t.Errorf("p=%q: echo args %q, want %q", v, got, want)
		}
		wantRedirs := []Redirect{
			{Pos: Pos{3, 5}, FD: 1, Op: RedirWrite, Path: v},
			{Pos: Pos{3, 10}, FD: 2, Op: RedirAppend, Path: v},
			{Pos: Pos{3, 18}, FD: 0, Op: RedirRead, Path: v},
		}
		if got := g.Stages[1].Redirs; !reflect.DeepEqual(got, wantRedirs) {
			t.Errorf("p=%q: redirections %+v", v, got)
		}
		if got, want := g.Stages[2].Env, l("A="+v, "B="+v, "C=x"+v); !reflect.DeepEqual(got, want) {
			t.Errorf("p=%q: env %q, want %q", v, got, want)
		}
		if got := argsOf(2); !reflect.DeepEqual(got, l("cmd", v)) {
			t.Errorf("p=%q: cmd args %q", v, got)
		}
		// Stages 4-7: cat <(echo $p) < <(cat < $p) >(wc $p)
		if got := argsOf(3); !reflect.DeepEqual(got, l("cat", "/dev/fd/63", "/dev/fd/62")) {
			t.Errorf("p=%q: cat args %q", v, got)
		}
		if got := argsOf(4); !reflect.DeepEqual(got, l("echo", v)) {
			t.Errorf("p=%q: echo in <(…) args %q", v, got)
		}
		if got := g.Stages[5].Redirs; len(got) != 1 || got[0].Path != v {
			t.Errorf("p=%q: cat in <(…) redirections %+v", v, got)
		}
		if got := argsOf(6); !reflect.DeepEqual(got, l("wc", v)) {
			t.Errorf("p=%q: wc in >(…) args %q", v, got)
		}
		// $p as the command: not a reference, mark or label.
		if got := argsOf(7); !reflect.DeepEqual(got, l(v)) {
			t.Errorf("p=%q: command %q", v, got)
		}
		// One word even when ${p:+…} is empty: a parameter always makes one.
		if got, want := argsOf(9), l("echo", v, strconv.Itoa(len(v)), strings.ToUpper(v)); !reflect.DeepEqual(got, want) {
			t.Errorf("p=%q: echo ${p:+$p} ${#p} ${p^^} args %q, want %q", v, got, want)
		}
		if len(g.Stages) != 10 || len(g.Edges) != 4 {
			t.Errorf("p=%q: %d stages, %d edges:\n%s", v, len(g.Stages), len(g.Edges), topology(g))
		}
	}

	// Operators on a parameter make one word too.
	for _, tt := range []struct {
		value string
		want  []string
	}{
		{"my file.txt", l("my file", "my file.txt", "my file.txt", "x")},
		{"*.txt", l("*", "*.txt", "*.txt", "x")},
		{"", l("", "", "x", "x")},
		{"a b", l("a b", "a b", "a b", "x")},
		{"$(id).txt", l("$(id)", "$(id).txt", "$(id).txt", "x")},
	} {
		src := "param p\nparam q=\necho ${p%.txt} ${p-x} ${p:-x} ${q:-x}"
		f, err := ParseFile("f.gp", src, l("p="+tt.value), cfg)
		if err != nil {
			t.Errorf("p=%q: %v", tt.value, err)
			continue
		}
		if got := f.Graph.Stages[0].Args[1:]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("p=%q: %s: %q, want %q", tt.value, src, got, tt.want)
		}
	}

	// A default is data too, once expanded: a glob or blank in it stays.
	f, err := ParseFile("f.gp", "param p='* a'\nparam q=$X\necho $p $q", nil, cfg)
	if err != nil || !reflect.DeepEqual(f.Graph.Stages[0].Args, l("echo", "* a", "x y")) {
		t.Errorf("defaults: %v %+v", err, f)
	}
	// The environment's variables keep bash's meaning: unquoted, they
	// split and glob.
	f, err = ParseFile("f.gp", "param p\necho $X $p $P", l("p=a b"), cfg)
	if err != nil || !reflect.DeepEqual(f.Graph.Stages[0].Args, l("echo", "x", "y", "a b", "a.go")) {
		t.Errorf("environment: %v %+v", err, f)
	}
}

// TestParseFileStdioInProcSubst checks that a stage of a process
// substitution wired to gpipe's own stdin or stdout gets it, rather than
// inheriting its parent's stdin or stdout as an unwired descriptor would.
// "seq 3 | cat - <(@stdin | wc -c)": wc counts gpipe's stdin, not seq's
// output; "seq 3 | tee >(wc -l | @stdout) | cat": wc writes to gpipe's
// stdout, not into cat.
func TestParseFileStdioInProcSubst(t *testing.T) {
	for _, tt := range []struct {
		src string
		fd  int // of wc, stage 3
	}{
		{"seq 3 | cat - <(@stdin | wc -c)", 0},
		{"seq 3 | tee >(wc -l | @stdout) | cat", 1},
	} {
		f, err := ParseFile("f.gp", tt.src, nil, fileCfg)
		if err != nil {
			t.Errorf("ParseFile(%q): %v", tt.src, err)
			continue
		}
		wc := f.Graph.Stages[2]
		for _, in := range wc.Inherits {
			if in.FD == tt.fd {
				t.Errorf("ParseFile(%q): %s shares fd %d of stage %d, but the file wires it to gpipe's own:\n%s",
					tt.src, wc.Name(), tt.fd, in.From.Stage+1, topology(f.Graph))
			}
		}
	}
}

// TestParseFileErrorsPositioned checks that every problem in the file's
// text has a position, including those found at a process substitution.
func TestParseFileErrorsPositioned(t *testing.T) {
	for _, tt := range []struct{ src, text string }{
		{"cat <(@stdin)", "@stdin feeds a stage's stdin only"},
		{"x | tee >(@stdout)", "@stdout takes a stage's stdout only"},
		{"@stdin | a: cat\nx | @a", "stage 1 (a: cat): stdin is fed twice (at 2:3 and here)"},
	} {
		_, err := ParseFile("f.gp", tt.src, nil, fileCfg)
		var pe *Error
		if !errors.As(err, &pe) || pe.Text != tt.text {
			t.Errorf("ParseFile(%q) error = %v, want %s", tt.src, err, tt.text)
			continue
		}
		if pe.Pos.Line < 1 || pe.Pos.Col < 1 {
			t.Errorf("ParseFile(%q) error %q has no position in the source", tt.src, err)
		}
	}
}

// TestParseFileParamInDefault checks that a default naming another
// parameter does not silently expand to nothing: the parameters are not
// in the environment a default is expanded in.
func TestParseFileParamInDefault(t *testing.T) {
	src := "param a=1\nparam b=$a/x\necho $b"
	f, err := ParseFile("f.gp", src, nil, fileCfg)
	if err == nil && f.Params[1].Default != "1/x" {
		t.Errorf("ParseFile(%q): b defaults to %q, neither 1/x nor an error", src, f.Params[1].Default)
	}
}

// TestParseFileRepeatedLabel checks that a named stage that brace
// expansion repeats is not silently two stages of which a reference
// reaches the last.
func TestParseFileRepeatedLabel(t *testing.T) {
	src := "echo {1,2}<(a: cat)\n@a | wc"
	if f, err := ParseFile("f.gp", src, nil, fileCfg); err == nil {
		t.Errorf("ParseFile(%q) accepted, two stages named a:\n%s", src, topology(f.Graph))
	}
}

// TestParseFileTeeDescriptors checks that an added tee never writes to a
// descriptor below the process substitutions' range, where a stage's own
// redirections (9>f) live: 55 readers and gpipe's stdout are 56 places.
func TestParseFileTeeDescriptors(t *testing.T) {
	src := "e: seq 3\n@e | @stdout\n" + strings.Repeat("@e | c\n", 55)
	f, err := ParseFile("f.gp", src, nil, fileCfg)
	if err != nil {
		return // refused: fine
	}
	for _, e := range f.Graph.Edges {
		if f.Graph.Stages[e.From.Stage].Added != "" && e.From.FD != 1 && e.From.FD < lastProcSubstFD {
			t.Errorf("the added tee writes to %v (fd %d) for one of 55 readers and gpipe's stdout", e.From, e.From.FD)
		}
	}
}

// TestParseFileLabelOnReference checks that a label in front of a
// reference or a transport mark, which names no stage, is refused rather
// than left undefined: ParseFile panicked on "x | a: @a" (found by
// FuzzParseFile as "0000|a: @a").
func TestParseFileLabelOnReference(t *testing.T) {
	for _, src := range []string{
		"x | a: @a",
		"a: @b | x\nb: y\n@a | z",
		"x | a: @fifo | y\n@a | z",
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("ParseFile(%q) panics: %v", src, r)
				}
			}()
			f, err := ParseFile("f.gp", src, nil, fileCfg)
			if err == nil {
				t.Errorf("ParseFile(%q) accepted:\n%s", src, topology(f.Graph))
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Pos.Line < 1 {
				t.Errorf("ParseFile(%q) error %v: want a positioned *Error", src, err)
			}
		}()
	}
}

// TestParseFileAssignedReference checks that an assignment before a
// reference or a transport mark does not turn it into a command named
// "@a" or "@fifo".
func TestParseFileAssignedReference(t *testing.T) {
	for _, src := range []string{"a: x\nA=1 @a | wc", "a | A=1 @fifo | b"} {
		f, err := ParseFile("f.gp", src, nil, fileCfg)
		if err == nil {
			for _, st := range f.Graph.Stages {
				if len(st.Args) > 0 && strings.HasPrefix(st.Args[0], "@") {
					t.Errorf("ParseFile(%q) runs a command %q:\n%s", src, st.Args[0], topology(f.Graph))
				}
			}
		}
	}
}

// TestParseFileProcSubstPortRead checks a reference to the descriptor of
// a process substitution marked "@fifo": when gpipe adds a tee there, the
// edge into the tee keeps the stage's port and the mark, so that the
// planner makes it the named FIFO.
func TestParseFileProcSubstPortRead(t *testing.T) {
	src := "a: tee >(@fifo | x)\n@a:63 | y"
	f, err := ParseFile("f.gp", src, nil, fileCfg)
	if err != nil {
		return // refused: fine
	}
	if got := f.Graph.Stages[0].Args; !reflect.DeepEqual(got, l("tee", "/dev/fd/63")) {
		t.Fatalf("tee args %q", got)
	}
	fifos := 0
	for _, e := range f.Graph.Edges {
		if e.Transport == TransportFIFO {
			fifos++
			if e.From.Stage != 0 || e.From.Name != "/dev/fd/63" {
				t.Errorf("ParseFile(%q): edge %+v is marked fifo, not the edge into the tee", src, e)
			}
		}
	}
	if fifos != 1 {
		t.Errorf("ParseFile(%q): %d edges marked fifo, want 1:\n%s", src, fifos, topology(f.Graph))
	}
}

// checkFileGraph fails t unless g, the graph of pipeline file src, is well
// formed: the checks of checkGraph, with the file's name, and the added
// stages' arguments.
func checkFileGraph(t *testing.T, src string, g *Graph) {
	t.Helper()
	if g == nil || g.Name != "f.gp" || len(g.Stages) == 0 {
		t.Fatalf("ParseFile(%q): graph %+v", src, g)
	}
	added := false
	for i, st := range g.Stages {
		if st == nil || st.ID != i {
			t.Fatalf("ParseFile(%q): stage %d is %+v", src, i, st)
		}
		checkPos(t, src, "stage", st.Pos)
		if st.Added != "" {
			added = true
			if len(st.Args) == 0 || st.Args[0] != "tee" || st.Parent != nil {
				t.Fatalf("ParseFile(%q): added stage %d is %+v", src, i, st)
			}
		} else if added {
			t.Fatalf("ParseFile(%q): stage %d of the user's after an added one", src, i)
		}
		for _, s := range append(append([]string(nil), st.Args...), st.Env...) {
			if strings.Contains(s, "\x00") {
				t.Fatalf("ParseFile(%q): stage %d has a NUL byte in %q", src, i, s)
			}
		}
		for _, r := range st.Redirs {
			checkPos(t, src, "redirection", r.Pos)
		}
		for _, in := range st.Inherits {
			if in.From.Stage < 0 || in.From.Stage >= len(g.Stages) {
				t.Fatalf("ParseFile(%q): stage %d inherits %+v", src, i, in)
			}
		}
	}
	if len(g.Order) != len(g.Stages) {
		t.Fatalf("ParseFile(%q): order %v for %d stages", src, g.Order, len(g.Stages))
	}
	at := make([]int, len(g.Stages))
	for i := range at {
		at[i] = -1
	}
	for k, s := range g.Order {
		if s < 0 || s >= len(g.Stages) || at[s] >= 0 {
			t.Fatalf("ParseFile(%q): order %v is no permutation", src, g.Order)
		}
		at[s] = k
	}
	for _, e := range g.Edges {
		if e.From.Stage < 0 || e.To.Stage < 0 || e.From.Stage >= len(g.Stages) || e.To.Stage >= len(g.Stages) || at[e.From.Stage] >= at[e.To.Stage] {
			t.Fatalf("ParseFile(%q): edge %+v between %d stages, order %v", src, e, len(g.Stages), g.Order)
		}
		if e.Transport < TransportAuto || e.Transport > TransportMem {
			t.Fatalf("ParseFile(%q): edge %+v has transport %v", src, e, e.Transport)
		}
		for _, p := range []Port{e.From, e.To} {
			if p.Name != "" && !strings.HasPrefix(p.Name, "/dev/fd/") {
				t.Fatalf("ParseFile(%q): edge %+v: a path %q", src, e, p.Name)
			}
		}
		checkPos(t, src, "edge", e.Pos)
	}
	// A named port is a path its stage has among its words.
	named := map[int]map[string]bool{}
	for _, e := range g.Edges {
		for _, p := range []Port{e.From, e.To} {
			if p.Name == "" {
				continue
			}
			if named[p.Stage] == nil {
				named[p.Stage] = map[string]bool{}
			}
			named[p.Stage][p.Name] = true
		}
	}
	for i, st := range g.Stages {
		words := append(append([]string(nil), st.Args...), st.Env...)
		for _, r := range st.Redirs {
			words = append(words, r.Path)
		}
		all := strings.Join(words, "\x00")
		for name := range named[i] {
			if !strings.Contains(all, name) {
				t.Fatalf("ParseFile(%q): %s has a port %s, not among its words %q", src, st.Name(), name, words)
			}
		}
	}
	if err := Check(g); err != nil {
		t.Fatalf("ParseFile(%q): the graph fails its check: %v", src, err)
	}
}

// argErrorRE matches the problems of FuzzParseFile's arguments, which
// have no position in the source.
var argErrorRE = regexp.MustCompile(`^(unknown parameter p[ :]|missing parameter [A-Za-z_][A-Za-z0-9_]*[ :])`)

// FuzzParseFile checks, for any file, that ParseFile with the parameter
// p=1 either refuses it with a positioned *Error (no position only for a
// parameter the command line gives or misses) or returns a graph that
// passes Check, and that ReadHeader agrees with it. A file that declares
// no p is parsed again without it, so that its body gets checked too.
func FuzzParseFile(f *testing.F) {
	for _, src := range []string{
		"seq 3 | wc -l",
		"param p\necho $p",
		"param p=2 # doc\na: seq $p\n@a | @fifo | b\n@a | c",
		"param p\n@stdin | x $p\n@stdin | y:  sort | @stdout",
		"param p=\na: x\n@a:3 | b | @a",
		"param p\npaste <(@a | @fifo) <(b: seq $p) | @stdout\na: gen\n@b | sink",
	} {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		hang := time.AfterFunc(parseHang, func() {
			panic(fmt.Sprintf("ParseFile(%q) still running after %v", src, parseHang))
		})
		defer hang.Stop()
		h, herr := ReadHeader("f.gp", src, fileCfg)
		if err := checkParseFile(t, src, l("p=1"), h, herr); err != nil && strings.HasPrefix(err.Text, "unknown parameter p") {
			checkParseFile(t, src, nil, h, herr)
		}
	})
}

// checkParseFile fails t unless ParseFile(src, args) returns a graph that
// passes checkFileGraph and agrees with the header h, or an *Error with a
// position in src (none for a problem with args) that agrees with herr,
// ReadHeader's error; it returns that *Error.
func checkParseFile(t *testing.T, src string, args []string, h *File, herr error) *Error {
	t.Helper()
	file, err := func() (*File, error) {
		// A panic fails this input only, with its stack: the other seeds,
		// and FuzzParse's after them, still run under go test.
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("ParseFile(%q, %q) panics: %v\n%s", src, args, r, debug.Stack())
			}
		}()
		return ParseFile("f.gp", src, args, fileCfg)
	}()
	if herr != nil && (err == nil || err.Error() != herr.Error()) {
		t.Fatalf("ReadHeader(%q) refuses it (%v), ParseFile(%q) says %v", src, herr, args, err)
	}
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("ParseFile(%q, %q) error is %T, not *Error: %v", src, args, err, err)
		}
		if pe.Name != "f.gp" || pe.Text == "" {
			t.Fatalf("ParseFile(%q, %q) error %#v: want name f.gp and a text", src, args, pe)
		}
		if pe.Pos == (Pos{}) {
			if !argErrorRE.MatchString(pe.Text) {
				t.Fatalf("ParseFile(%q, %q) error %q has no position", src, args, pe.Text)
			}
			return pe
		}
		checkPos(t, src, "error", pe.Pos)
		return pe
	}
	if file.Name != "f.gp" || file.Doc != h.Doc || !reflect.DeepEqual(file.Params, h.Params) || !reflect.DeepEqual(file.Options, h.Options) {
		t.Fatalf("ParseFile(%q, %q) = %+v, ReadHeader = %+v", src, args, file, h)
	}
	checkFileGraph(t, src, file.Graph)
	return nil
}
