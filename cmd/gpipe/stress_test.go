package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpipe/gpipe/internal/procs"
)

// TestSignalDuringStartStress sends SIGINT or SIGKILL to gpipe at a random
// moment during the start of 50 stages (each a program with a child of
// its own), 20 times (200 in the long form, about 45 s, which CI runs:
// GPIPE_TEST_LONG=1), and checks that no process of the run survives,
// ever, and that an interrupted run leaves no FIFO directory. Survivors
// are found by a tag in their environment, never by name.
func TestSignalDuringStartStress(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the scripts
	runs := 20
	if os.Getenv("GPIPE_TEST_LONG") != "" && !testing.Short() {
		runs = 200
	}
	gpipe := gpipeBinary(t, false)
	tmp := t.TempDir()
	var spec strings.Builder
	spec.WriteString("sh -c 'sleep 100 & exec sleep 100' <(sleep 100)")
	for range 49 {
		spec.WriteString(" | sh -c 'sleep 100 & exec cat'")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range runs {
		sig := syscall.SIGINT
		if i%2 == 1 {
			sig = syscall.SIGKILL
		}
		args := []string{spec.String()}
		if i%4 < 2 {
			args = []string{"--transport", "fifo", spec.String()}
		}
		tag := fmt.Sprintf("GPIPE_STRESS_TAG=%d-%d", os.Getpid(), i)
		cmd := exec.Command(gpipe, args...)
		cmd.Env = append(os.Environ(), tag, "TMPDIR="+tmp)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // no Ctrl-C of the test's own reaches it
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		_ = cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(scaled(30 * time.Second)):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("run %d: gpipe did not end within 30s of %v", i, sig)
		}
		if left := procs.WaitUntagged(tag, scaled(10*time.Second)); len(left) > 0 {
			t.Fatalf("run %d (%v): processes of the run still running: %v", i, sig, left)
		}
		if sig == syscall.SIGINT {
			if names, _ := filepath.Glob(filepath.Join(tmp, "*")); len(names) > 0 {
				t.Fatalf("run %d (SIGINT): left %v", i, names)
			}
		} else {
			// A killed gpipe leaves its FIFO directory for the next
			// run to sweep; sweep it here instead.
			names, _ := filepath.Glob(filepath.Join(tmp, "*"))
			for _, n := range names {
				os.RemoveAll(n)
			}
		}
	}
}
