package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
		if left := waitUntagged(tag, scaled(10*time.Second)); len(left) > 0 {
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

// waitUntagged waits until no running process has tag in its
// environment, and returns the pids of those still running at the
// deadline (a zombie has ended).
func waitUntagged(tag string, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		left := tagged(tag)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tagged lists the running processes whose environment holds tag.
func tagged(tag string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	want := []byte(tag + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		if processRuns(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
