package stage

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// terminalHelperEnv marks the run of this test binary that
// TestTerminalJob starts on a pseudo-terminal: TestTerminalJobHelper
// then runs, as the leader of a session of its own.
const terminalHelperEnv = "GPIPE_STAGE_TERMINAL_HELPER"

// TestTerminalJob runs pipelines as jobs of a real terminal: this test
// binary, re-executed in a new session on a fresh pseudo-terminal, runs
// TestTerminalJobHelper there. (TestMain takes away the terminal a test
// starts with; the helper takes the pseudo-terminal as its own after.)
func TestTerminalJob(t *testing.T) {
	master, slave := openPty(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scaled(60*time.Second))
	defer cancel()
	args := []string{"-test.run=^TestTerminalJobHelper$", "-test.v"}
	if f := flag.Lookup("test.gocoverdir"); f != nil && f.Value.String() != "" {
		// Its coverage counts with this run's.
		args = append(args, "-test.gocoverdir="+f.Value.String())
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), terminalHelperEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var shown bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			shown.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the helper did not end within %v", scaled(60*time.Second))
	}
	select {
	case <-read: // all it showed
	case <-time.After(scaled(20 * time.Second)):
		t.Error("the terminal did not close within 20s of the helper's end")
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil || !bytes.Contains(shown.Bytes(), []byte("--- PASS: TestTerminalJobHelper")) {
		t.Errorf("the helper on the terminal: %v; it showed:\n%s", err, shown.String())
	}
}

// TestTerminalJobHelper is the session leader TestTerminalJob starts.
// Its parent, the test, is in another session: its process group is
// orphaned, as gpipe's is when its shell has gone.
func TestTerminalJobHelper(t *testing.T) {
	if os.Getenv(terminalHelperEnv) == "" {
		t.Skip("run by TestTerminalJob on a pseudo-terminal")
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		t.Fatalf("take the pseudo-terminal: %v", err)
	}
	tty := openTerminal()
	if tty == nil {
		t.Fatal("no controlling terminal")
	}
	defer tty.close()
	if !tty.ours() || tty.foreground() != unix.Getpgrp() {
		t.Fatalf("the terminal's foreground group is %d, not ours (%d)", tty.foreground(), unix.Getpgrp())
	}
	if !orphaned() {
		t.Error("a group whose parent is in another session is not orphaned")
	}

	// The pipeline's group has the terminal while it runs, and gpipe
	// has it back after.
	r := runSetup(t, `awk '{ print ($5 == $8 ? "foreground" : "background") }' /proc/self/stat`, setup{opts: Options{JobControl: true}})
	if r.stdout != "foreground\n" || r.ExitCode() != 0 {
		t.Errorf("a stage of a job: %q, exit %d; want it in the foreground", r.stdout, r.ExitCode())
	}
	if !tty.ours() {
		t.Errorf("after the job, the terminal's foreground group is %d, not ours", tty.foreground())
	}

	// Without job control, the terminal stays gpipe's.
	r = runSetup(t, `awk '{ print ($5 == $8 ? "foreground" : "background") }' /proc/self/stat`, setup{})
	if r.stdout != "background\n" {
		t.Errorf("a stage run without job control: %q, want it in the background", r.stdout)
	}

	// A stage stopped in an orphaned group, where nobody would continue
	// it: the job is torn down by SIGHUP, as the kernel does.
	r = runSetup(t, `sh -c 'kill -STOP $$; echo continued'`, setup{opts: Options{JobControl: true}})
	if s := r.Statuses[0]; s.Signal != syscall.SIGHUP || r.ExitCode() != 129 || r.stdout != "" {
		t.Errorf("a stopped stage: %v, exit %d, stdout %q; want killed by SIGHUP, 129", s, r.ExitCode(), r.stdout)
	}
	if !tty.ours() {
		t.Errorf("after the stop, the terminal's foreground group is %d, not ours", tty.foreground())
	}
}

// TestStopped: stopped tells a stopped process from a running one, and
// from one that is gone.
func TestStopped(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if stopped(pid) {
		t.Error("a running sleep is stopped")
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "sleep stops", func() bool { return stopped(pid) })
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "sleep continues", func() bool { return !stopped(pid) })
	cmd.Process.Kill()
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) {
		t.Fatal(err)
	}
	if stopped(pid) {
		t.Error("a process that is gone is stopped")
	}
}

// openPty opens a new pseudo-terminal: its master side, and its terminal
// side, neither becoming this process's controlling terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal side: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}
