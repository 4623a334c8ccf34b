package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docCommandDeadline bounds every command a document's example runs.
var docCommandDeadline = scaled(60 * time.Second)

// TestDocsPipelineFiles runs every example of docs/pipeline-files.md with
// the real gpipe, so that the document cannot drift from the program.
// The document follows the convention docExtract reads:
//
//   - a fenced block with the info string "gp NAME.gp" is a pipeline file,
//     written to NAME.gp (executable when it starts with "#!");
//   - a fenced block with the info string "text NAME" is a data file,
//     written to NAME ("text" alone is prose);
//   - a fenced block with the info string "console" holds commands: every
//     line starting with "$ " is one (a line ending in a backslash goes on
//     on the next), run with bash -c; the lines after it, up to the next
//     "$ " line or the end of the block, are its stdout and stderr,
//     together and in order, exactly; a last line "[exit N]" is its exit
//     status, 0 when there is none;
//   - any other block is prose.
//
// Every block is processed in order, in one temporary directory, with the
// real gpipe first on PATH, LC_ALL=C, TMPDIR a directory of the test's
// own (left empty by every example) and stdin /dev/null. A pipeline file
// that no later command names, and a document without a pipeline file,
// fail the test: an example nothing runs could rot.
func TestDocsPipelineFiles(t *testing.T) {
	const path = "../../docs/pipeline-files.md"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := docExtract(string(src))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	gpFiles := 0
	for _, b := range blocks {
		if b.Kind == docPipelineFile {
			gpFiles++
		}
	}
	if gpFiles == 0 {
		t.Fatalf("%s has no pipeline file (a block opening with ```gp NAME.gp): nothing of it is tested", path)
	}
	bin := gpipeBinary(t, false)
	dir, tmp := t.TempDir(), t.TempDir()
	env := docEnv(os.Environ(), filepath.Dir(bin), tmp)
	for _, f := range runDoc(dir, env, blocks, docCommandDeadline) {
		t.Errorf("%s:%s", path, f)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("%s: the examples left %s in TMPDIR", path, strings.Join(names, ", "))
	}
}

// docEnv is the environment a document's commands run in: env with
// binDir first on PATH (the system's directories kept), the C locale and
// TMPDIR set to tmp.
func docEnv(env []string, binDir, tmp string) []string {
	var out []string
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH":
			if v != "" {
				path = v
			}
		case k == "TMPDIR", k == "LANG", k == "LANGUAGE", strings.HasPrefix(k, "LC_"):
		default:
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+binDir+string(os.PathListSeparator)+path, "LC_ALL=C", "TMPDIR="+tmp)
}

// The kinds of fenced blocks a document's examples are made of.
const (
	docProse        = ""
	docPipelineFile = "gp"
	docDataFile     = "text"
	docConsole      = "console"
)

// docBlock is one fenced code block of a document.
type docBlock struct {
	Line int    // the line of the opening fence, from 1
	Kind string // docPipelineFile, docDataFile, docConsole or docProse
	Name string // the file a gp or text block is written to
	Body string // the lines between the fences, each ending in "\n"
	Cmds []docCmd
}

// docCmd is one command of a console block.
type docCmd struct {
	Line int    // the line of its "$ ", from 1
	Cmd  string // without the "$ "
	Want string // its stdout and stderr
	Exit int    // its exit status
}

// docExtract reads the fenced code blocks of a Markdown document (fences
// of three or more backquotes or tildes, indented by at most three
// spaces, as CommonMark has them) and makes sense of those that are
// examples. A malformed example is an error naming its line.
func docExtract(src string) ([]docBlock, error) {
	lines := strings.Split(src, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		indent, fence, info, ok := openingFence(lines[i])
		if !ok {
			continue
		}
		b := docBlock{Line: i + 1}
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			if closingFence(lines[i], fence) {
				closed = true
				break
			}
			body = append(body, dedent(lines[i], indent))
		}
		if !closed {
			return nil, fmt.Errorf("%d: the block opened here is never closed", b.Line)
		}
		for _, l := range body {
			b.Body += l + "\n"
		}
		words := strings.Fields(info)
		kind := ""
		if len(words) > 0 {
			kind = words[0]
		}
		switch kind {
		case docPipelineFile:
			if len(words) != 2 || !strings.HasSuffix(words[1], ".gp") || !safeName(words[1]) {
				return nil, fmt.Errorf("%d: a pipeline file's block opens with ```gp NAME.gp (got %q)", b.Line, info)
			}
			b.Kind, b.Name = kind, words[1]
		case docDataFile:
			if len(words) == 1 {
				break // text to read, not a file
			}
			if len(words) != 2 || !safeName(words[1]) {
				return nil, fmt.Errorf("%d: a data file's block opens with ```text NAME (got %q)", b.Line, info)
			}
			b.Kind, b.Name = kind, words[1]
		case docConsole:
			b.Kind = kind
			cmds, err := consoleCommands(b.Line+1, body)
			if err != nil {
				return nil, err
			}
			b.Cmds = cmds
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// openingFence reads line as the opening fence of a code block: its
// indentation, its fence (``` or longer, ~~~ or longer) and its info
// string.
func openingFence(line string) (indent int, fence, info string, ok bool) {
	rest := strings.TrimLeft(line, " ")
	indent = len(line) - len(rest)
	if indent > 3 || len(rest) < 3 || (rest[0] != '`' && rest[0] != '~') {
		return 0, "", "", false
	}
	n := len(rest) - len(strings.TrimLeft(rest, rest[:1]))
	if n < 3 {
		return 0, "", "", false
	}
	fence, info = rest[:n], strings.TrimSpace(rest[n:])
	if fence[0] == '`' && strings.Contains(info, "`") {
		return 0, "", "", false // inline code, not a fence
	}
	return indent, fence, info, true
}

// closingFence reports whether line closes a block opened with fence: the
// same character, at least as many, nothing after but blanks.
func closingFence(line, fence string) bool {
	rest := strings.TrimLeft(line, " ")
	if len(line)-len(rest) > 3 {
		return false
	}
	n := len(rest) - len(strings.TrimLeft(rest, fence[:1]))
	return n >= len(fence) && strings.TrimSpace(rest[n:]) == ""
}

// dedent takes off up to indent leading spaces, as CommonMark does with
// the lines of an indented fence's block.
func dedent(line string, indent int) string {
	for i := 0; i < indent && strings.HasPrefix(line, " "); i++ {
		line = line[1:]
	}
	return line
}

// safeName reports whether name is a relative path inside the directory.
func safeName(name string) bool {
	return filepath.IsLocal(name) && !strings.HasSuffix(name, "/")
}

// exitPrefix and exitSuffix frame the last line of a command's expected
// output when its exit status is not 0: "[exit 2]".
const exitPrefix, exitSuffix = "[exit ", "]"

// consoleCommands reads a console block's lines, the first being line
// first of the document.
func consoleCommands(first int, body []string) ([]docCmd, error) {
	var cmds []docCmd
	var out []string
	flush := func() error {
		if len(cmds) == 0 {
			return nil
		}
		c := &cmds[len(cmds)-1]
		if n := len(out); n > 0 && strings.HasPrefix(out[n-1], exitPrefix) && strings.HasSuffix(out[n-1], exitSuffix) {
			code, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(out[n-1], exitPrefix), exitSuffix))
			if err != nil || code < 0 || code > 255 {
				return fmt.Errorf("%d: %q is no exit status: write [exit N], N from 1 to 255", c.Line, out[n-1])
			}
			c.Exit, out = code, out[:n-1]
		}
		for _, l := range out {
			c.Want += l + "\n"
		}
		out = nil
		return nil
	}
	for i := 0; i < len(body); i++ {
		line := body[i]
		if !strings.HasPrefix(line, "$ ") {
			if len(cmds) == 0 {
				return nil, fmt.Errorf("%d: a console block starts with a command, a line \"$ COMMAND\"", first+i)
			}
			out = append(out, line)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		c := docCmd{Line: first + i, Cmd: strings.TrimPrefix(line, "$ ")}
		// A backslash at the end of the line goes on on the next, as in
		// the shell.
		for strings.HasSuffix(c.Cmd, `\`) && i+1 < len(body) {
			i++
			c.Cmd += "\n" + body[i]
		}
		if strings.TrimSpace(c.Cmd) == "" {
			return nil, fmt.Errorf("%d: an empty command", c.Line)
		}
		cmds = append(cmds, c)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return cmds, nil
}

// runDoc writes the files of blocks into dir and runs their commands
// there in order, each with bash -c in env and within deadline, and
// returns every difference, each starting with the line of the document
// it is about.
func runDoc(dir string, env []string, blocks []docBlock, deadline time.Duration) []string {
	var fails []string
	failf := func(line int, format string, a ...any) {
		fails = append(fails, fmt.Sprintf("%d: %s", line, fmt.Sprintf(format, a...)))
	}
	var later []docCmd
	for _, b := range blocks {
		later = append(later, b.Cmds...)
	}
	for _, b := range blocks {
		switch b.Kind {
		case docPipelineFile, docDataFile:
			mode := os.FileMode(0o644)
			if b.Kind == docPipelineFile && strings.HasPrefix(b.Body, "#!") {
				mode = 0o755
			}
			p := filepath.Join(dir, b.Name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				failf(b.Line, "%v", err)
				continue
			}
			if err := os.WriteFile(p, []byte(b.Body), mode); err != nil {
				failf(b.Line, "%v", err)
				continue
			}
			if err := os.Chmod(p, mode); err != nil {
				failf(b.Line, "%v", err)
			}
		}
		if b.Kind == docPipelineFile && !mentioned(b.Name, b.Line, later) {
			failf(b.Line, "no command after it runs %s: an example that nothing runs may rot", b.Name)
		}
		for _, c := range b.Cmds {
			got, code, err := runDocCommand(dir, env, c.Cmd, deadline)
			if err != nil {
				failf(c.Line, "$ %s\n%v\noutput so far:\n%s", c.Cmd, err, got)
				continue
			}
			if got != c.Want || code != c.Exit {
				failf(c.Line, "$ %s\n--- the document says (exit %d):\n%s--- the command gave (exit %d):\n%s---", c.Cmd, c.Exit, c.Want, code, got)
			}
		}
	}
	return fails
}

// mentioned reports whether a command after line names the file name.
func mentioned(name string, line int, cmds []docCmd) bool {
	for _, c := range cmds {
		if c.Line > line && strings.Contains(c.Cmd, name) {
			return true
		}
	}
	return false
}

// runDocCommand runs cmd with bash -c in dir and returns its stdout and
// stderr, interleaved as written, and its exit status. Past deadline, its
// whole process group is killed and that is the error.
func runDocCommand(dir string, env []string, cmd string, deadline time.Duration) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-c", cmd)
	c.Dir, c.Env = dir, env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out // one pipe: the order as written
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	// A descendant outside the group that holds the output open does not
	// hold up the test past this either.
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	if ctx.Err() != nil {
		return out.String(), -1, fmt.Errorf("no end after %v: killed", deadline)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0, nil
	case errors.As(err, &ee) && ee.Exited():
		return out.String(), ee.ExitCode(), nil
	case errors.As(err, &ee):
		return out.String(), -1, fmt.Errorf("bash: %v", ee)
	}
	return out.String(), -1, err
}

// TestDocExtract holds the reader of examples to a small document of its
// own, so that TestDocsPipelineFiles tests what the document says.
func TestDocExtract(t *testing.T) {
	const doc = "# A title\n" + // 1
		"\n" + // 2
		"```gp hello.gp\n" + // 3
		"#!/usr/bin/env -S gpipe -f\n" + // 4
		"param who=world\n" + // 5
		"echo \"hello, $who\"\n" + // 6
		"```\n" + // 7
		"Prose with `inline` code and a ``` in the middle.\n" + // 8
		"```text in.txt\n" + // 9
		"b\n" + // 10
		"\n" + // 11
		"a\n" + // 12
		"```\n" + // 13
		"```sh\n" + // 14
		"$ not a command: prose\n" + // 15
		"```\n" + // 16
		"  ```console\n" + // 17
		"  $ gpipe -f hello.gp\n" + // 18
		"  hello, world\n" + // 19
		"$ sort in.txt \\\n" + // 20
		"  | cat\n" + // 21
		"\n" + // 22
		"a\n" + // 23
		"b\n" + // 24
		"$ true\n" + // 25
		"$ gpipe -f hello.gp x=1\n" + // 26
		"gpipe: hello.gp: unknown parameter x (the file declares who)\n" + // 27
		"[exit 2]\n" + // 28
		"  ```\n" + // 29
		"````text\n" + // 30
		"```console\n" + // 31
		"$ inside a longer fence: text\n" + // 32
		"```\n" + // 33
		"````\n" + // 34
		"~~~ text\n" + // 35
		"~~~\n" // 36
	blocks, err := docExtract(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []docBlock{
		{Line: 3, Kind: docPipelineFile, Name: "hello.gp", Body: "#!/usr/bin/env -S gpipe -f\nparam who=world\necho \"hello, $who\"\n"},
		{Line: 9, Kind: docDataFile, Name: "in.txt", Body: "b\n\na\n"},
		{Line: 14, Body: "$ not a command: prose\n"},
		{Line: 17, Kind: docConsole, Cmds: []docCmd{
			{Line: 18, Cmd: "gpipe -f hello.gp", Want: "hello, world\n"},
			{Line: 20, Cmd: "sort in.txt \\\n| cat", Want: "\na\nb\n"},
			{Line: 25, Cmd: "true"},
			{Line: 26, Cmd: "gpipe -f hello.gp x=1", Want: "gpipe: hello.gp: unknown parameter x (the file declares who)\n", Exit: 2},
		}},
		{Line: 30, Body: "```console\n$ inside a longer fence: text\n```\n"},
		{Line: 35},
	}
	if len(blocks) != len(want) {
		t.Fatalf("got %d blocks, want %d:\n%#v", len(blocks), len(want), blocks)
	}
	for i := range want {
		g, w := blocks[i], want[i]
		if w.Body == "" && w.Kind == docConsole {
			w.Body = g.Body // the console's body is checked through its commands
		}
		if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", w) {
			t.Errorf("block %d:\n got %#v\nwant %#v", i+1, g, w)
		}
	}

	for _, bad := range []struct{ doc, err string }{
		{"text\n```gp\necho\n```\n", "2: a pipeline file's block opens with ```gp NAME.gp"},
		{"```gp x.txt\necho\n```\n", "1: a pipeline file's block opens with ```gp NAME.gp"},
		{"```gp ../x.gp\necho\n```\n", "1: a pipeline file's block opens with ```gp NAME.gp"},
		{"```text /etc/x\ny\n```\n", "1: a data file's block opens with ```text NAME"},
		{"\n```console\nhi\n$ echo hi\n```\n", "3: a console block starts with a command"},
		{"```console\n$ false\n[exit x]\n```\n", "2: \"[exit x]\" is no exit status"},
		{"```console\n$ \n```\n", "2: an empty command"},
		{"a\n\n```gp x.gp\necho\n", "3: the block opened here is never closed"},
	} {
		_, err := docExtract(bad.doc)
		if err == nil || !strings.HasPrefix(err.Error(), bad.err) {
			t.Errorf("docExtract(%q): got error %v, want one starting %q", bad.doc, err, bad.err)
		}
	}
}

// TestDocRun holds the runner of examples to commands that need no gpipe:
// what it compares, what it reports, and that a deadline kills a hang.
func TestDocRun(t *testing.T) {
	const doc = "```text data.txt\n" + // 1
		"x y\n" + // 2
		"```\n" + // 3
		"```console\n" + // 4
		"$ cat data.txt; echo err >&2; echo out\n" + // 5
		"x y\n" + // 6
		"err\n" + // 7
		"out\n" + // 8
		"$ sh -c 'exit 3'\n" + // 9
		"[exit 3]\n" + // 10
		"$ echo \"$LC_ALL $TMPDIR\" | grep -c '^C /'\n" + // 11
		"1\n" + // 12
		"$ echo wrong\n" + // 13
		"right\n" + // 14
		"$ true\n" + // 15
		"[exit 1]\n" + // 16
		"```\n" // 17
	blocks, err := docExtract(doc)
	if err != nil {
		t.Fatal(err)
	}
	fails := runDoc(t.TempDir(), docEnv(os.Environ(), t.TempDir(), t.TempDir()), blocks, docCommandDeadline)
	want := []string{"13: $ echo wrong\n", "15: $ true\n"}
	if len(fails) != len(want) {
		t.Fatalf("got %d failures, want %d:\n%s", len(fails), len(want), strings.Join(fails, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(fails[i], w) {
			t.Errorf("failure %d:\n%s\nwant it to start %q", i+1, fails[i], w)
		}
	}
	if !strings.Contains(fails[0], "--- the document says (exit 0):\nright\n--- the command gave (exit 0):\nwrong\n---") {
		t.Errorf("the difference is not shown:\n%s", fails[0])
	}

	// A command past its deadline is killed, with the processes of its
	// group: the background sleep holds the output open too.
	_, code, err := runDocCommand(t.TempDir(), os.Environ(), "sleep 1000 & sleep 1000", 100*time.Millisecond)
	if err == nil || err.Error() != "no end after 100ms: killed" || code != -1 {
		t.Errorf("a hang: got exit %d, error %v, want it killed", code, err)
	}

	// A pipeline file no command runs is reported.
	blocks, err = docExtract("```gp lone.gp\necho\n```\n```console\n$ true\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	fails = runDoc(t.TempDir(), os.Environ(), blocks, time.Minute)
	if len(fails) != 1 || !strings.HasPrefix(fails[0], "1: no command after it runs lone.gp") {
		t.Errorf("got %q, want one failure for the file nothing runs", fails)
	}
}
