package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpipe/gpipe/internal/procs"
	"github.com/gpipe/gpipe/stage"
)

// These tests drive gpipe as a user does, from an interactive bash on a
// real pseudo-terminal with job control: Ctrl-C, Ctrl-Z, fg, & and kill.
// Every wait has a deadline, so that a hang fails the test.

// termDeadline bounds each wait for the terminal to show something.
var termDeadline = scaled(20 * time.Second)

// shell is an interactive bash on a pseudo-terminal.
type shell struct {
	t      *testing.T
	dir    string
	master *os.File
	cmd    *exec.Cmd

	mu   sync.Mutex
	out  bytes.Buffer // everything the terminal showed
	seen int          // how much of out expect has consumed
}

// startShell starts bash -i in a new session whose controlling terminal is
// a fresh pseudo-terminal, in a temporary directory holding the scripts
// given, with a gpipe built from this package first on PATH.
func startShell(t *testing.T, gpipe string, files map[string]string) *shell {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash")
	}
	master, slave := openPty(t)
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bash, "--norc", "--noprofile", "-i")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PS1=$ ", "PS2=", "TERM=dumb", "HISTFILE=/dev/null",
		"PATH="+filepath.Dir(gpipe)+":"+os.Getenv("PATH"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	sh := &shell{t: t, dir: dir, master: master, cmd: cmd}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			sh.mu.Lock()
			sh.out.Write(buf[:n])
			sh.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the shell's session leader's group
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	sh.expect(`\$ $`)
	return sh
}

// shown is everything the terminal showed so far.
func (sh *shell) shown() string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.out.String()
}

// send types text on the terminal.
func (sh *shell) send(text string) {
	sh.t.Helper()
	if _, err := sh.master.WriteString(text); err != nil {
		sh.t.Fatalf("typing %q: %v", text, err)
	}
}

// expect waits until the terminal shows a match of re after what earlier
// expects consumed, consumes through the match and returns it.
func (sh *shell) expect(re string) []string {
	sh.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(termDeadline)
	for {
		sh.mu.Lock()
		rest := sh.out.String()[sh.seen:]
		loc := rx.FindStringSubmatchIndex(rest)
		if loc != nil {
			m := []string{}
			for i := 0; i < len(loc); i += 2 {
				if loc[i] < 0 {
					m = append(m, "")
					continue
				}
				m = append(m, rest[loc[i]:loc[i+1]])
			}
			sh.seen += loc[1]
			sh.mu.Unlock()
			return m
		}
		sh.mu.Unlock()
		if time.Now().After(deadline) {
			sh.t.Fatalf("the terminal did not show %q within %v; after the last match it shows:\n%q", re, termDeadline, rest)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pids reads the pids a test's stages wrote, one a line, to file.
func (sh *shell) pids(file string) []int {
	sh.t.Helper()
	data, err := os.ReadFile(filepath.Join(sh.dir, file))
	if err != nil {
		sh.t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			sh.t.Fatalf("%s: %v", file, err)
		}
		out = append(out, n)
	}
	return out
}

// waitGone waits until none of pids runs (a zombie has ended).
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(termDeadline)
	for _, pid := range pids {
		for procs.Runs(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs %v after gpipe ended", pid, termDeadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// terminalGpipe builds gpipe for a terminal test: the test binary plays
// gpipe only under testscript.
func terminalGpipe(t *testing.T) string {
	t.Helper()
	return gpipeBinary(t, false)
}

// intStage records each SIGINT it gets, then dies by it as a program
// that does not catch it would. Its background sleep, started by a
// non-interactive shell, ignores SIGINT: only the end of the pipeline's
// process group ends it.
const intStage = `trap 'echo $$ >> ints; trap - INT; kill -INT $$' INT
echo $$ >> pids
sleep 300 &
echo $! >> pids
echo $$ > started.$$
wait
`

// TestTerminalCtrlC: Ctrl-C on the terminal gives every stage exactly one
// SIGINT (gpipe hands its process group the terminal, and forwards
// nothing), gpipe dies by SIGINT, so that bash stops a loop of runs, and
// nothing of the pipeline is left, the stages' own children included.
func TestTerminalCtrlC(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), map[string]string{"stage.sh": intStage})
	sh.send(`for i in 1 2; do gpipe 'sh stage.sh | sh stage.sh | sh stage.sh'; echo "after $i: $?"; done; echo "loop ended"` + "\n")
	deadline := time.Now().Add(termDeadline)
	for {
		matches, _ := filepath.Glob(filepath.Join(sh.dir, "started.*"))
		if len(matches) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stages did not start within %v", termDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sh.send("\x03")
	sh.expect(`\$ $`)
	sh.send("echo status=$?\n")
	sh.expect(`status=130`)
	if out := sh.shown(); strings.Contains(out, "after 1") || strings.Contains(out, "loop ended\r\n") {
		t.Errorf("the loop went on after Ctrl-C:\n%q", out)
	}
	pids := sh.pids("pids")
	waitGone(t, pids)
	ints := sh.pids("ints")
	count := map[int]int{}
	for _, p := range ints {
		count[p]++
	}
	if len(count) != 3 {
		t.Errorf("%d stages recorded a SIGINT (%v), want 3", len(count), ints)
	}
	for p, n := range count {
		if n != 1 {
			t.Errorf("stage %d got %d SIGINTs, want 1", p, n)
		}
	}
}

// TestTerminalStopAndFg: Ctrl-Z stops the pipeline and gpipe, bash gets
// the terminal back, fg continues it with the terminal, and the bytes
// typed before and after come through.
func TestTerminalStopAndFg(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), nil)
	sh.send("gpipe 'cat | tr a-z A-Z'\n")
	sh.send("abc\n")
	sh.expect(`ABC\r\n`)
	sh.send("\x1a")
	sh.expect(`Stopped.*gpipe`)
	sh.expect(`\$ $`)
	sh.send("echo shell-has-the-terminal\n")
	sh.expect(`\r\nshell-has-the-terminal\r\n\$ $`)
	sh.send("fg\n")
	sh.expect(`gpipe 'cat \| tr a-z A-Z'\r\n`)
	sh.send("def\n")
	sh.expect(`DEF\r\n`)
	sh.send("\x04")
	sh.expect(`\$ $`)
	sh.send("echo status=$?\n")
	sh.expect(`status=0\r\n`)
}

// TestTerminalBackgroundThenFg: gpipe started with & stops when a stage
// reads the terminal from the background, and fg gives it the terminal.
func TestTerminalBackgroundThenFg(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), nil)
	sh.send("gpipe 'cat | tr a-z A-Z' &\n")
	sh.expect(`\[1\] [0-9]+`)
	sh.expect(`\$ $`)
	deadline := time.Now().Add(termDeadline)
	for {
		sh.send("jobs\n")
		if m := sh.expect(`\[1\]\+ +(\S+)[^\n]*\n(?:.*\n)?\$ $`); strings.HasPrefix(m[1], "Stopped") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gpipe in the background did not stop for terminal input within %v", termDeadline)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sh.send("fg\n")
	sh.expect(`gpipe 'cat \| tr a-z A-Z'\r\n`)
	sh.send("xyz\n")
	sh.expect(`XYZ\r\n`)
	sh.send("\x04")
	sh.expect(`\$ $`)
	sh.send("echo status=$?\n")
	sh.expect(`status=0\r\n`)
}

// termStage records gpipe's pid (its parent) and its own, and leaves a
// child of its own that ignores SIGTERM.
const termStage = `echo $PPID > gpipe.pid
echo $$ >> pids
sh -c 'trap "" TERM; echo $$ >> pids; exec sleep 300' &
sleep 300
`

// TestTerminalNothingStarted: when no stage starts (their interpreter
// is missing), gpipe still has the terminal at the end, and so has the
// script that ran it: each failed start forked a process that made its
// own group the terminal's foreground before its exec failed, and the
// group of the first process to start is the pipeline's (see
// group_linux.go). Without the terminal, the script's read would stop it
// (SIGTTIN) rather than read the line.
func TestTerminalNothingStarted(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), map[string]string{"badinterp": "#!/nonexistent/interpreter\necho never\n"})
	sh.send("sh -c 'gpipe \"./badinterp | ./badinterp\"; echo status=$?; read x; echo got-$x'\n")
	sh.expect(`status=126\r\n`)
	sh.send("line\n")
	sh.expect(`got-line\r\n`)
	sh.expect(`\$ $`)
}

// TestTerminalTerm: SIGTERM sent to gpipe in a terminal's foreground
// reaches the whole pipeline, a stage's own child included, and gpipe
// dies by it.
func TestTerminalTerm(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), map[string]string{"stage.sh": termStage})
	sh.send("gpipe --grace 500ms 'sh stage.sh | cat'\n")
	deadline := time.Now().Add(termDeadline)
	for {
		data, _ := os.ReadFile(filepath.Join(sh.dir, "pids"))
		if bytes.Count(data, []byte("\n")) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stages did not start within %v", termDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	gp := sh.pids("gpipe.pid")
	if err := syscall.Kill(gp[0], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sh.expect(`Terminated`)
	sh.expect(`\$ $`)
	sh.send("echo status=$?\n")
	sh.expect(`status=143\r\n`)
	waitGone(t, sh.pids("pids"))
}

// ignoringStage runs its arguments as a program that ignores Ctrl-C and
// Ctrl-\ (as does what it executes), after recording its pid.
const ignoringStage = `trap "" INT QUIT
echo $$ >> pids
exec "$@"
`

// TestTerminalKeysReachBuiltins: Ctrl-C and Ctrl-\ reach the builtins
// inside gpipe as they reach the programs, wherever the builtins stand,
// so that a graph whose programs all ignore the key still ends: the
// builtin stops by it (128+N), its reader sees its input end, its writer
// a broken pipe, and gpipe ends by the key. --grace is long, so that only
// the key, not the kill after it, can end the run within the deadline.
// Both hosts: inside gpipe, and a helper process of its own (--isolate).
func TestTerminalKeysReachBuiltins(t *testing.T) {
	gpipe := terminalGpipe(t)
	cases := []struct {
		name, spec string
		// flowing: the processes (by their place in pids) that must have
		// moved bytes through the builtin before the key: it runs.
		flowing []int
		want    []string // --status lines, with %d for 128+N and %s for the signal
	}{
		{"first", `gen | sh ign.sh cat > /dev/null`, []int{0},
			[]string{`stage 1 \(gen\): %d \(%s\)`, `stage 2 \(sh\): 0`}},
		{"middle", `sh ign.sh yes | filter y | sh ign.sh cat > /dev/null`, []int{0, 1},
			[]string{`stage 1 \(sh\): 141 \(SIGPIPE\)`, `stage 2 \(filter\): %d \(%s\)`, `stage 3 \(sh\): 0`}},
		{"last", `sh ign.sh yes | sink`, []int{0},
			[]string{`stage 1 \(sh\): 141 \(SIGPIPE\)`, `stage 2 \(sink\): %d \(%s\)`}},
	}
	keys := []struct {
		name string
		key  string
		sig  syscall.Signal
	}{{"INT", "\x03", syscall.SIGINT}, {"QUIT", "\x1c", syscall.SIGQUIT}}
	for _, host := range []string{"", "--isolate "} {
		for _, c := range cases {
			for _, k := range keys {
				t.Run(hostPrefix(host)+c.name+"-"+k.name, func(t *testing.T) {
					sh := startShell(t, gpipe, map[string]string{"ign.sh": ignoringStage})
					sh.send("gpipe --status --grace 60s " + host + "'" + c.spec + "'\n")
					pids := waitPids(sh, len(c.flowing))
					waitGroupReady(t, pids[0])
					for _, i := range c.flowing {
						waitFlowing(t, pids[i])
					}
					sh.send(k.key)
					code := 128 + int(k.sig)
					for _, w := range c.want {
						if strings.Contains(w, "%d") {
							w = fmt.Sprintf(w, code, "SIG"+k.name)
						}
						sh.expect(`gpipe: status: ` + w + `\r\n`)
					}
					sh.expect(`\$ $`)
					sh.send("echo status=$?\n")
					sh.expect(fmt.Sprintf(`status=%d\r\n`, code))
					waitGone(t, pids)
				})
			}
		}
	}
}

// TestTerminalStopBuiltins: Ctrl-Z stops a pipeline with builtins first,
// in the middle or last, and fg continues it: the bytes typed after fg
// come through, and it ends well.
func TestTerminalStopBuiltins(t *testing.T) {
	gpipe := terminalGpipe(t)
	// ask reads a line from the terminal, once it has recorded its pid,
	// and writes it, then copies its input.
	const ask = `echo $$ >> pids
read line < /dev/tty
echo "got $line"
exec cat
`
	cases := []struct{ name, spec, want string }{
		{"first", `gen | sh ask.sh | head -n 3`, `got abc\r\n1\r\n2\r\n`},
		{"middle", `sh ask.sh < /dev/null | filter got | tr a-z A-Z`, `GOT ABC\r\n`},
		{"last", `sh ask.sh < /dev/null | count`, `1\r\n`},
	}
	for _, host := range []string{"", "--isolate "} {
		for _, c := range cases {
			t.Run(hostPrefix(host)+c.name, func(t *testing.T) {
				sh := startShell(t, gpipe, map[string]string{"ask.sh": ask})
				sh.send("gpipe " + host + "'" + c.spec + "'\n")
				pids := waitPids(sh, 1)
				sh.send("\x1a")
				sh.expect(`Stopped.*gpipe`)
				sh.expect(`\$ $`)
				sh.send("echo shell-has-the-terminal\n")
				sh.expect(`\r\nshell-has-the-terminal\r\n\$ $`)
				sh.send("fg\n")
				sh.expect(`gpipe .*\r\n`)
				sh.send("abc\n")
				sh.expect(c.want)
				sh.expect(`\$ $`)
				sh.send("echo status=$?\n")
				sh.expect(`status=0\r\n`)
				waitGone(t, pids)
			})
		}
	}
}

// waitPids waits until the stages recorded n pids in the file pids, and
// returns them.
func waitPids(sh *shell, n int) []int {
	sh.t.Helper()
	deadline := time.Now().Add(termDeadline)
	for {
		data, _ := os.ReadFile(filepath.Join(sh.dir, "pids"))
		if bytes.Count(data, []byte("\n")) >= n {
			return sh.pids("pids")
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("the stages did not start within %v; the terminal shows:\n%q", termDeadline, sh.shown())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGroupReady waits until the guardian of pid's process group (the
// member that gpipe started as "gpipe --gpipe-guardian") waits for gpipe,
// which it does once it listens for the signals that reach the group: a
// key typed before would end it, not the run.
func waitGroupReady(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(termDeadline)
	for {
		if pgid, err := syscall.Getpgid(pid); err == nil {
			for _, g := range groupGuardians(pgid) {
				chans, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", g))
				for _, c := range chans {
					if data, _ := os.ReadFile(c); strings.Contains(string(data), "pipe_read") {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guardian of process %d's group did not wait for gpipe within %v", pid, termDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupGuardians returns the pids of the guardians in process group pgid.
func groupGuardians(pgid int) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if strings.Contains(string(cmdline), "\x00"+stage.GuardianArg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFlowing waits until process pid has read or written 4 MiB, more
// than a pipe holds: the builtin at the other end has run.
func waitFlowing(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(termDeadline)
	for {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		for _, line := range strings.Split(string(data), "\n") {
			name, value, _ := strings.Cut(line, ": ")
			if n, err := strconv.ParseInt(value, 10, 64); err == nil && (name == "rchar" || name == "wchar") && n >= 4<<20 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d moved no 4 MiB within %v", pid, termDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostPrefix names a subtest by the host flag it runs with.
func hostPrefix(flag string) string {
	if flag == "" {
		return ""
	}
	return strings.TrimPrefix(strings.TrimSpace(flag), "--") + "-"
}

// heldStage leaves a child in the background, which ignores Ctrl-C (a
// non-interactive shell's background job does) and holds the stage's
// stdout, then copies the terminal.
const heldStage = `(sleep 400 & echo $! >> pids)
echo $$ >> pids
exec cat
`

// TestTerminalCtrlCBuiltinReadsHeldPipe: after Ctrl-C, a builtin that
// reads a pipe that its writer's child still holds open stops at once, by
// SIGINT, as a program does: not when --grace is over (a minute here,
// longer than the test waits), as one killed. On both hosts.
func TestTerminalCtrlCBuiltinReadsHeldPipe(t *testing.T) {
	gpipe := terminalGpipe(t)
	for _, host := range []string{"", "--isolate "} {
		t.Run(hostPrefix(host)+"cat", func(t *testing.T) {
			sh := startShell(t, gpipe, map[string]string{"held.sh": heldStage})
			sh.send("gpipe --status --grace 60s " + host + "'sh held.sh | cat'\n")
			pids := waitPids(sh, 2)
			waitGroupReady(t, pids[1])
			sh.send("\x03")
			sh.expect(`gpipe: status: stage 1 \(sh\): 130 \(SIGINT\)\r\n`)
			sh.expect(`gpipe: status: stage 2 \(cat\): 130 \(SIGINT\)\r\n`)
			sh.expect(`\$ $`)
			sh.send("echo status=$?\n")
			sh.expect(`status=130\r\n`)
			waitGone(t, pids)
		})
	}
}
