package stage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSignalsWhileRunning: SIGUSR1 asks for a live snapshot (OnLive);
// any other signal that is no teardown goes to every process of the
// pipeline as it is; a SIGUSR1 that came before the start is dropped.
func TestSignalsWhileRunning(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "trapped")
	g, cmds, plan := prepareWith(t, `sh -c 'trap "echo usr2; exit 0" USR2; : > `+marker+`; while :; do sleep 1; done' | cat`, setup{})
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	null := devNull(t)
	live := make(chan *Snapshot, 1)
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGUSR1
	p := Start(g, cmds, plan, Options{Stdin: null, Stdout: out, Stderr: null, Grace: time.Second, Signals: sigs,
		OnLive: func(s *Snapshot) { live <- s }})
	waitUntil(t, 20*time.Second, "sh sets its trap", func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	p.Signal(syscall.SIGUSR1)
	select {
	case snap := <-live:
		sh, cat := snap.Stages[0], snap.Stages[1]
		if sh.State != Running || sh.Pid == 0 || cat.State != Running || !cat.InProcess || cat.Pid != 0 {
			t.Errorf("live: sh %v pid %d, cat %v inside gpipe %v pid %d; want both running, sh a process", sh.State, sh.Pid, cat.State, cat.InProcess, cat.Pid)
		}
	case <-time.After(scaled(20 * time.Second)):
		t.Fatal("no live snapshot within 20s of SIGUSR1")
	}
	p.Signal(syscall.SIGUSR2)
	r := waitResult(t, p)
	got, _ := os.ReadFile(out.Name())
	if string(got) != "usr2\n" || r.ExitCode() != 0 || r.Signal != nil || r.Statuses[0].Code != 0 {
		t.Errorf("stdout %q, exit %d, signal %v, sh %v; want usr2 and 0", got, r.ExitCode(), r.Signal, r.Statuses[0])
	}
	select {
	case <-live:
		t.Error("a SIGUSR1 before the start gave a snapshot")
	default:
	}
}
