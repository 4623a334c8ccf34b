package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diffDeadline bounds one run of one side of a differential row.
var diffDeadline = scaled(10 * time.Second)

// outcome is what one run of a pipeline did, as its caller sees it.
type outcome struct {
	stdout, stderr string
	// code is the exit status; -N when the process itself (bash or gpipe,
	// not a stage) was killed by signal N.
	code int
}

// diffRow is a pipeline that bash (with pipefail) and gpipe must run alike.
type diffRow struct {
	name  string
	spec  string
	stdin string // fed to the pipeline; empty means /dev/null

	// gpipe, when set, is what gpipe must print and exit with instead of
	// what bash does: a difference the README documents, named in a
	// comment on the row. Rows without it compare gpipe with bash exactly.
	gpipe *outcome
	// bashWords says that bash's own messages ("bash: line 1: missing: No
	// such file or directory") are gpipe's too, with gpipe's name in place
	// of bash's and of the line (README "Where gpipe deliberately
	// differs"): bash's stdout and stderr are compared with that
	// substituted.
	bashWords bool
	// untouched says that gpipe must leave the fixtures as they were, where
	// bash changes them: it starts nothing (a documented difference too).
	// Otherwise gpipe must leave the directory exactly as bash does.
	untouched bool
}

// diffFixtures is the content of the directory every run starts in: path →
// content. A path ending in "*" is made executable (the "*" is dropped).
var diffFixtures = map[string]string{
	"a.txt":          "hello\nworld\n",
	"b.txt":          "b\n",
	"with space.txt": "space\n",
	"sub/c.txt":      "c\n",
	".hidden":        "hidden\n",
	"script.sh*":     "#!/bin/sh\necho \"script: $*\"\n",
	"noexec.sh":      "#!/bin/sh\necho never\n",
}

// bigStdin is larger than any pipe, so that every stage that passes it on
// blocks on a full pipe at some point.
var bigStdin = strings.Repeat("0123456789abcdef\n", 200_000) // 3.4 MB

// diffRows: every row's spec runs as `bash -c 'set -o pipefail; SPEC'` and
// as `gpipe SPEC`. Rows where bash itself prints (bash: line 1: …) carry a
// gpipe override, since that text is bash's own.
var diffRows = []diffRow{
	// Plain pipelines, stdin and stdout passing through.
	{name: "count", spec: `seq 1 100 | grep 7 | wc -l`},
	{name: "long", spec: `seq 1 20 | grep 1 | sort -rn | head -3 | tr '\n' , | sed 's/,$//' | cat`},
	{name: "stdin", spec: `sort | uniq -c | sort -rn`, stdin: "b\na\nb\nc\nb\na\n"},
	{name: "stdin_dash", spec: `cat - a.txt`, stdin: "from stdin\n"},
	{name: "stdin_big", spec: `cat | cat | wc -c`, stdin: bigStdin},
	{name: "stdin_unread", spec: `head -2 | cat`, stdin: bigStdin},
	{name: "stdout_big", spec: `head -c 5000000 /dev/zero | tr '\0' x | md5sum`},
	{name: "no_stdin", spec: `cat | wc -c`},

	// Quoting.
	{name: "quotes", spec: `printf '[%s]\n' 'a b' "c  d" e\ f "g'h" 'i"j' "k\"l" "m\\n" "\$o" '' ""`},
	{name: "ansi_c", spec: `printf '[%s]\n' $'tab\there' $'nl\\n' $'\x41'`},
	{name: "empty_var", spec: `printf '[%s]\n' "$EMPTY"x $EMPTY y "$EMPTY"`},
	{name: "split", spec: `printf '[%s]\n' $SPACED "$SPACED"`},
	{name: "quoted_glob", spec: `echo "*.txt" '*.txt' \*.txt`},

	// Expansions.
	{name: "params", spec: `echo $GREETING ${GREETING} ${UNSET:-default} ${EMPTY:-colon} ${EMPTY-dash} ${UNSET+plus} ${GREETING:+alt}`},
	{name: "trim", spec: `echo ${GREETING#h*l} ${GREETING##h*l} ${GREETING%l*} ${GREETING%%l*} ${#GREETING}`},
	{name: "substr_case", spec: `echo ${GREETING:1} ${GREETING:1:2} ${GREETING: -2} ${GREETING^} ${GREETING^^} ${GREETING/l/L} ${GREETING//l/L}`},
	// README "deliberate differences": anchored substitution is refused,
	// since the expander gpipe uses would silently ignore the anchor.
	{name: "subst_anchored", spec: `echo ${GREETING/#h/J} ${GREETING/%o/0} ${GREETING/#x/y}`,
		gpipe: &outcome{code: 2, stderr: "gpipe: spec:1:6: anchored substitution `${name/#pattern/…}` is not supported; run it as a stage: sh -c '…'\n"}},
	{name: "indirect_assign", spec: `echo ${!REF} ${UNSET:=assigned} $UNSET`},
	{name: "arith", spec: `echo $((1 + 2 * 3)) $((7 / 2)) $((7 % 3)) $((2 ** 10)) $((-5 >> 1)) $((NUM + 1)) $(( NUM > 40 ? 1 : 0 ))`},
	{name: "arith_bases", spec: `echo $(( 010 + 0x10 + 2#101 ))`},
	{name: "tilde", spec: `echo ~ ~/x "~" '~/y' ~nosuchuser-gpipe`},
	// bash expands ~ after the = of an argument that looks like an assignment.
	{name: "tilde_after_equals", spec: `echo a=~/b --dir=~/c`},
	{name: "brace", spec: `echo {1..5} {a..e..2} {01..03} pre{x,y}post {a,b}{c,d} {single} {}`},
	{name: "at_unset", spec: `printf '[%s]\n' "$@" x $@ y "$*"`},
	{name: "pwd", spec: `echo "$PWD" | cat`},

	// Globs.
	{name: "glob", spec: `printf '[%s]\n' *.txt`},
	{name: "glob_all", spec: `printf '[%s]\n' *`},
	{name: "glob_dot", spec: `printf '[%s]\n' .*`},
	{name: "glob_classes", spec: `echo ?.txt [ab].txt [!a].txt [^b].txt sub/*`},
	{name: "glob_unmatched", spec: `echo *.nomatch no/such/* x[`},
	{name: "glob_from_var", spec: `echo $GLOBVAR "$GLOBVAR"`},

	// Assignments.
	{name: "assign", spec: `X=1 printenv X | cat`},
	{name: "assign_chain", spec: `A=1 B=$A sh -c 'echo "$A $B"'`},
	{name: "assign_last_wins", spec: `X=a X=b printenv X`},
	{name: "assign_append", spec: `GREETING+=_more printenv GREETING`},
	// bash expands ~ at the start of an assignment's value and after each ":".
	{name: "assign_tilde", spec: `X=~/p Y=a:~/q printenv X Y`},
	{name: "assign_override", spec: `GREETING=changed printenv GREETING`},
	{name: "assign_not_in_words", spec: `X=1 echo "[$X]"`},
	{name: "assign_per_stage", spec: `X=inner sh -c 'echo "$X"' | X=other sh -c 'cat; echo "$X"'`},
	{name: "assign_not_shared", spec: `X=1 true | printenv X`},

	// Redirections.
	{name: "in", spec: `cat < a.txt | wc -c`},
	{name: "in_last_wins", spec: `cat < a.txt < b.txt`},
	{name: "out", spec: `echo out > out.txt`},
	{name: "out_twice", spec: `echo x > o1.txt > o2.txt`},
	{name: "out_quoted_target", spec: `echo spaced > "my file.txt"`},
	{name: "out_var_target", spec: `echo named > "$OUTNAME"`},
	{name: "out_glob_unmatched", spec: `echo x > *.nomatch`},
	{name: "in_glob", spec: `cat < s*.sh`},
	{name: "out_lists_itself", spec: `ls > list.txt`},
	{name: "append", spec: `echo more >> a.txt`},
	{name: "clobber", spec: `echo clobbered >| b.txt`},
	{name: "readwrite", spec: `cat <> a.txt`},
	{name: "only_redirect", spec: `> empty.txt`},
	{name: "copy", spec: `cat < a.txt > copy.txt 2> err.txt`},
	{name: "stderr_file", spec: `ls nosuch 2> err.txt | cat`},
	{name: "stderr_to_pipe", spec: `ls nosuch a.txt 2>&1 | sort`},
	{name: "order_swap", spec: `ls nosuch a.txt 2>&1 > out.txt | tr a-z A-Z`},
	{name: "order_both", spec: `ls nosuch a.txt > out.txt 2>&1 | cat`},
	{name: "to_stderr", spec: `echo to-stderr >&2 | cat`},
	{name: "to_stderr_first", spec: `>&2 echo leading`},
	{name: "to_pipe_twice", spec: `echo x 2>&1 >&2 | cat`},
	{name: "to_stderr_then_null", spec: `echo kept >&2 2>/dev/null`},
	{name: "null_then_stderr", spec: `echo gone 2>/dev/null >&2`},
	{name: "both_file", spec: `ls nosuch a.txt &> all.txt`},
	{name: "both_append", spec: `ls nosuch a.txt &>> a.txt`},
	{name: "pipe_all", spec: `ls nosuch a.txt |& sort`},
	{name: "pipe_all_after_redirs", spec: `ls nosuch 2>/dev/null |& tr a-z A-Z`},
	{name: "swap_fds", spec: `ls nosuch a.txt 3>&1 1>&2 2>&3 3>&- | tr a-z A-Z`},
	{name: "fd3_file", spec: `sh -c 'echo three >&3' 3> three.txt`},
	{name: "fd3_pipe", spec: `sh -c 'echo three >&3' 3>&1 | cat`},
	{name: "move_fd", spec: `sh -c 'echo moved >&4; echo closed >&3' 3> f3.txt 4>&3-`},
	{name: "close_stdout", spec: `cat a.txt >&-`},
	{name: "close_stderr", spec: `ls nosuch 2>&- | cat`},
	// cat with no arguments is gpipe's builtin, which words its own error
	// (README: builtin names win over PATH); the status is the same.
	{name: "close_stdin", spec: `cat <&-`, gpipe: &outcome{code: 1, stderr: "gpipe: stage 1 (cat): standard input: bad file descriptor\n"}},
	{name: "close_stdin_external", spec: `command cat <&-`},
	{name: "close_fd3", spec: `sh -c 'echo >&3' 3>&- 2>&1 | cat`},

	// The builtins named as coreutils programs leave their help to the
	// program, as bash runs it (README "Builtins").
	{name: "namesake_help_cat", spec: `cat --help`},
	{name: "namesake_help_head", spec: `head --help < a.txt | cat`},
	{name: "namesake_help_tee", spec: `tee --help`},
	{name: "namesake_help_split", spec: `split --help`},
	{name: "namesake_h", spec: `head -h`},
	{name: "namesake_version", spec: `cat --version | head -n 1`},

	// Exit statuses.
	{name: "false_mid", spec: `true | false | true`},
	{name: "rightmost_fails", spec: `sh -c 'exit 3' | sh -c 'exit 5' | cat`},
	{name: "first_fails", spec: `sh -c 'exit 3' | cat`},
	{name: "last_fails_reader_gone", spec: `yes | sh -c 'exit 7'`},
	{name: "stdin_reader_gone", spec: `cat | sh -c 'exit 4'`, stdin: bigStdin},
	// README "Exit status": death of a stage by signal N counts as 128+N,
	// as under bash, which also prints its own job report ("Terminated")
	// that gpipe does not.
	{name: "killed", spec: `sh -c 'kill -TERM $$' | cat`, gpipe: &outcome{code: 143}},
	{name: "killed_last", spec: `echo x | sh -c 'kill -KILL $$'`, gpipe: &outcome{code: 137}},
	{name: "test_status", spec: `test -f nosuch`},
	{name: "test_ok", spec: `test -f a.txt | cat`},
	{name: "script", spec: `./script.sh one "two three" | cat`},

	// SIGPIPE: README "Exit status": a stage killed by SIGPIPE, or that
	// exited 141, did not fail, so gpipe exits 0 where pipefail says 141.
	{name: "sigpipe_yes", spec: `yes | head -1`, gpipe: &outcome{stdout: "y\n"}},
	{name: "sigpipe_seq", spec: `seq 1000000 | head -1`, gpipe: &outcome{stdout: "1\n"}},
	{name: "exit_141", spec: `sh -c 'exit 141' | cat`, gpipe: &outcome{}},

	// A command that cannot be run: bash's words and status. README
	// "deliberately differs": it is reported before anything starts, which
	// these rows cannot tell.
	{name: "not_found_last", spec: `echo hi | nosuchcmd-gpipe`, bashWords: true},
	{name: "not_found_path", spec: `PATH=/nonexistent ls`, bashWords: true},
	{name: "not_executable", spec: `./noexec.sh | cat`, bashWords: true},
	{name: "not_a_program", spec: `echo | ./sub`, bashWords: true},
	{name: "not_there", spec: `./nosuch.sh | cat`, bashWords: true},
	// ... which this one can: bash starts cat, which creates out.txt.
	{name: "not_found_first", spec: `nosuchcmd-gpipe | cat > out.txt`,
		gpipe:     &outcome{stderr: "gpipe: nosuchcmd-gpipe: command not found\n", code: 127},
		untouched: true},
	// README: builtins that only exist inside a shell are "command not found".
	{name: "shell_builtin", spec: `cd /`,
		gpipe: &outcome{stderr: "gpipe: cd: command not found\n", code: 127}},

	// README "deliberately differs": an expansion error is a spec error,
	// exit 2, nothing started.
	{name: "expand_unset", spec: `echo ${X:?unset} | cat`,
		gpipe: &outcome{stderr: "gpipe: spec:1:6: X: unset\n", code: 2}},
	{name: "expand_div0", spec: `echo $((1/0)) | cat > out.txt`,
		gpipe:     &outcome{stderr: "gpipe: spec:1:6: division by zero\n", code: 2},
		untouched: true},

	// Process substitution: the paths bash prints, its bytes, its files.
	{name: "ps_paste", spec: `paste <(seq 3) <(seq 4 6)`},
	{name: "ps_paths", spec: `echo <(true) <(true) x<(true)y`},
	{name: "ps_wc_name", spec: `wc -c <(head -c 100 /dev/zero) <(printf abc)`},
	{name: "ps_diff", spec: `diff <(sort b.txt) <(sort a.txt)`},
	{name: "ps_nested", spec: `cat <(cat <(cat <(echo deep) <(echo er)))`},
	{name: "ps_redirect_in", spec: `wc -l < <(seq 10)`},
	{name: "ps_redirect_out", spec: `cat a.txt > >(tr a-z A-Z > up.txt)`},
	{name: "ps_both_ways", spec: `tee >(tr a-z A-Z > up.txt) < <(printf 'x
y
') > copy.txt`},
	{name: "ps_many", spec: `paste <(seq 3) <(seq 4 6) <(seq 7 9) <(seq 3) <(seq 3) <(seq 3) <(seq 3) <(seq 3) <(seq 3) <(seq 3) <(seq 3) <(seq 3)`},
	{name: "ps_early_exit", spec: `paste <(seq 3) <(yes | head -5) <(seq 1000000 | head -2)`},
	{name: "ps_unread", spec: `head -1 <(seq 1000000)`},
	{name: "ps_comm", spec: `comm <(printf 'a\nb\nc\n') <(printf 'b\nc\nd\n')`},
	{name: "ps_join", spec: `join <(printf '1 a\n2 b\n') <(printf '1 x\n2 y\n')`},
	{name: "ps_sort_m", spec: `sort -m -n <(seq 1 2 9) <(seq 2 2 10)`},
	{name: "ps_cmp_same", spec: `cmp <(head -c 3000000 /dev/zero) <(head -c 3000000 /dev/zero)`},
	{name: "ps_cmp_differ", spec: `cmp <(seq 5) <(seq 6)`},
	{name: "ps_diff3", spec: `diff3 <(seq 3) <(seq 4) <(seq 5)`},
	{name: "ps_grep_f", spec: `grep -c -f <(echo 7) <(seq 300)`},
	// Both inputs larger than a pipe: diff reads them in its own order.
	{name: "ps_diff_big", spec: `diff <(seq 300000) <(seq 300000 | sed 's/^5000$/x/')`},
	{name: "ps_paste_big", spec: `paste <(seq 200000) <(seq 200000 | rev) | md5sum`},
	// The branches inherit the stage's stdin and stdout, as bash forks them.
	{name: "ps_stdin_shared", spec: `cat <(cat)`, stdin: bigStdin},
	{name: "ps_stdin_dash", spec: `paste - <(cat a.txt)`, stdin: "x\ny\n"},
	{name: "ps_fanout", spec: `seq 1000 | tee >(grep 7 > sevens.txt) >(wc -l > all.txt) >(sha256sum > sum.txt) | tail -1`},
	{name: "ps_fanout_hash", spec: `head -c 20000000 /dev/zero | tee >(sha256sum > a.sum) >(wc -c > n.txt) | sha256sum > b.sum`},
	// README "deliberate differences": a failing process substitution
	// counts (bash ignores it and says 0).
	{name: "ps_branch_fails", spec: `paste <(seq 2) <(cat missing)`,
		gpipe: &outcome{code: 1, stdout: "1\t\n2\t\n", stderr: "cat: missing: No such file or directory\n"}},
	{name: "ps_main_fails", spec: `cat <(seq 2) missing`},
	// A branch stopped by a broken pipe did not fail.
	{name: "ps_branch_sigpipe", spec: `head -c 10 <(yes)`},

	// Judged under the same rule: a redirection target that expands to
	// several words is an expansion error (bash fails the stage with 1).
	{name: "redirect_ambiguous", spec: `echo x > {a,b}.out | cat`,
		gpipe: &outcome{stderr: "gpipe: spec:1:10: {a,b}.out: ambiguous redirect\n", code: 2}},

	// README "Exit status": a stage whose redirection fails does not start
	// and has status 1, as in bash, with bash's words.
	{name: "redirect_missing", spec: `cat < missing | wc -c`, bashWords: true},
	{name: "redirect_missing_program", spec: `wc -l < /nonexist`, bashWords: true},
	{name: "redirect_missing_last", spec: `seq 3 | wc -l < missing`, bashWords: true},
	{name: "redirect_no_dir", spec: `echo hi > nodir/x | cat`, bashWords: true},
	{name: "redirect_is_dir", spec: `echo hi > sub | cat`, bashWords: true},
	{name: "redirect_not_dir", spec: `cat < a.txt/x`, bashWords: true},
	{name: "redirect_bad_fd", spec: `echo x >&5`, bashWords: true},
	{name: "redirect_after_stderr_moved", spec: `cat < missing 2>/dev/null | wc -c`, bashWords: true},
	// The message goes to the stage's stderr as the redirections before
	// the failed one left it, in order, as bash writes it.
	{name: "redirect_stderr_moved_first", spec: `cat 2>/dev/null < missing | wc -c`, bashWords: true},
	{name: "redirect_stderr_to_pipe", spec: `cat 2>&1 < missing | cat`, bashWords: true},
	{name: "redirect_stderr_to_pipe_program", spec: `command cat 2>&1 < missing | cat`, bashWords: true},
	{name: "redirect_stderr_closed", spec: `command cat 2>&- < missing`, bashWords: true},
}

// TestDifferential runs every row under bash and under the real gpipe, each
// in a fresh copy of the fixtures at the same path, and compares stdout,
// stderr, exit status and the files left behind.
func TestDifferential(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to compare with")
	}
	gpipe := gpipeBinary(t, false)
	for _, r := range diffRows {
		t.Run(r.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "work")
			env := diffEnv(dir)

			fresh(t, dir)
			fixtures := snapshot(t, dir)
			script := "set -o pipefail; " + r.spec
			if strings.Contains(r.spec, ">(") {
				// bash does not wait for ">(…)" by itself; gpipe does.
				script += "\ns=$?; wait; exit $s"
			}
			want := runIn(t, dir, env, r.stdin, bash, "-c", script)
			wantFiles := snapshot(t, dir)

			fresh(t, dir)
			got := runIn(t, dir, env, r.stdin, gpipe, r.spec)
			gotFiles := snapshot(t, dir)

			if r.bashWords {
				want.stdout = bashLine.ReplaceAllString(want.stdout, "gpipe: ")
				want.stderr = bashLine.ReplaceAllString(want.stderr, "gpipe: ")
			}
			if r.gpipe != nil {
				t.Logf("bash, which gpipe deliberately differs from: %s", want)
				want = *r.gpipe
			}
			if r.untouched {
				t.Logf("bash changed the fixtures:\n%s", diffFiles(wantFiles, fixtures))
				wantFiles = fixtures
			}
			if got != want {
				t.Errorf("spec %s\ngpipe: %s\nwant:  %s", r.spec, got, want)
			}
			if d := diffFiles(gotFiles, wantFiles); d != "" {
				t.Errorf("spec %s: files differ (gpipe vs want):\n%s", r.spec, d)
			}
		})
	}
}

// bashLine is how bash -c begins its own messages: its name as started
// (a path here), and the line.
var bashLine = regexp.MustCompile(`(?m)^(/\S*/)?bash: line 1: `)

func (o outcome) String() string {
	return fmt.Sprintf("status %d, stdout %q, stderr %q", o.code, o.stdout, o.stderr)
}

// diffEnv is the whole environment of both sides: nothing from the host
// but PATH, so that no variable of the host changes what a row prints.
func diffEnv(dir string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=/home/gpipe-test",
		"LC_ALL=C",
		"PWD=" + dir,
		"GREETING=hello",
		"SPACED=a  b   c",
		"EMPTY=",
		"NUM=41",
		"REF=GREETING",
		"GLOBVAR=*.txt",
		"OUTNAME=named.txt",
	}
}

// fresh replaces dir with a new copy of the fixtures.
func fresh(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for name, content := range diffFixtures {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is filtered by the umask; the fixtures must not be.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// runIn runs argv in dir with env and stdin, bounded by diffDeadline. The
// process gets a group of its own, and the whole group is killed at the
// deadline, so that a stuck stage of either side cannot outlive the test.
func runIn(t *testing.T, dir string, env []string, stdin string, argv ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), diffDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %v", argv[0], diffDeadline)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", argv[0], err)
	}
	o := outcome{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		o.code = -int(ws.Signal())
	}
	return o
}

// snapshot maps every file and directory under dir to its permissions and,
// for a file, its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			files[rel] = info.Mode().String()
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = info.Mode().String() + " " + string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return files
}

// diffFiles lists, one a line, the paths whose entries differ; "" if none.
func diffFiles(got, want map[string]string) string {
	var paths []string
	for p := range got {
		paths = append(paths, p)
	}
	for p := range want {
		if _, ok := got[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		g, gok := got[p]
		w, wok := want[p]
		switch {
		case !gok:
			fmt.Fprintf(&b, "  %s: missing, want %q\n", p, w)
		case !wok:
			fmt.Fprintf(&b, "  %s: unexpected %q\n", p, g)
		case g != w:
			fmt.Fprintf(&b, "  %s: %q, want %q\n", p, g, w)
		}
	}
	return b.String()
}
