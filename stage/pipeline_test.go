package stage

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestStartObserveSteer starts a pipeline, watches it through its events
// and snapshots, stops and continues its process, tears it down, and
// reads the final snapshot with the bytes its ring carried.
func TestStartObserveSteer(t *testing.T) {
	g, cmds, plan := prepare(t, "gen -n 5 | cat | sleep 100", registry())
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	var mu sync.Mutex
	var events []Event
	seen := func(kind EventKind, stage int) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Kind == kind && e.Stage == stage {
				return true
			}
		}
		return false
	}
	waitFor := func(kind EventKind, stage int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !seen(kind, stage); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %v event for stage %d within 10s", kind, stage+1)
			}
		}
	}
	p := Start(g, cmds, plan, Options{Stdin: devnull, Stdout: devnull, Stderr: devnull, Grace: time.Second,
		OnEvent: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})

	snap := p.Snapshot()
	if st := snap.Stages[2]; st.State != Running || st.Pid == 0 || st.InProcess {
		t.Errorf("sleep: %v, pid %d, inside gpipe %v; want a running process", st.State, st.Pid, st.InProcess)
	}
	p.Signal(syscall.SIGSTOP)
	waitFor(StoppedBy, 2)
	if st := p.Snapshot().Stages[2]; st.State != Stopped {
		t.Errorf("after SIGSTOP, sleep is %v", st.State)
	}
	p.Signal(syscall.SIGCONT)
	waitFor(Continued, 2)
	p.Signal(syscall.SIGTERM)
	done := make(chan *Result, 1)
	go func() { done <- p.Wait() }()
	var r *Result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline did not end within 10s of SIGTERM")
	}
	if r.ExitCode() != 143 || r.Statuses[2].Signal != syscall.SIGTERM {
		t.Errorf("exit %d, sleep %v; want 143, killed by SIGTERM", r.ExitCode(), r.Statuses[2])
	}
	for i := range g.Stages {
		if !seen(Started, i) || !seen(Exited, i) {
			t.Errorf("stage %d: started event %v, exited event %v", i+1, seen(Started, i), seen(Exited, i))
		}
	}
	mu.Lock()
	for _, e := range events {
		if e.Kind == Exited && (e.Stage == 2) != (e.Usage != nil) {
			t.Errorf("stage %d exited with usage %v: want it for the process only", e.Stage+1, e.Usage)
		}
	}
	mu.Unlock()
	final := p.Snapshot()
	for i, st := range final.Stages {
		if st.State != Ended {
			t.Errorf("final snapshot: stage %d %v", i+1, st.State)
		}
	}
	// gen -n 5 writes "1\n" to "5\n", and cat read them all.
	// (How long either side waited depends on the scheduler.)
	if c := final.Edges[0]; !c.Known || c.Written != 10 || c.Read != 10 {
		t.Errorf("edge 1 carried %+v, want 10 bytes written and read", c)
	}
	if final.Edges[1].Known {
		t.Errorf("edge 2, a pipe to a program, claims a count: %+v", final.Edges[1])
	}
}

// TestMeasureIO: with Options.MeasureIO, a process stage's I/O figures are
// kept past its end, read from its /proc entry before it was reaped: seq
// wrote exactly its output, however soon it ended; a builtin inside gpipe
// has none; a sleeping process tells where it sleeps.
func TestMeasureIO(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skipf("no /proc/PID/io here: %v", err)
	}
	g, cmds, plan := prepare(t, "seq 100000 | cat | sh -c 'cat > /dev/null; exec sleep 100'", registry())
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	p := Start(g, cmds, plan, Options{Stdin: devnull, Stdout: devnull, Stderr: devnull, Grace: time.Second, MeasureIO: true})
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap := p.Snapshot()
		if st := snap.Stages[2]; st.Wchan != "" && st.IO.Rchar >= 588895 && snap.Stages[0].State == Ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sh did not read seq's output and sleep within 10s: %+v", snap.Stages[2])
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Signal(syscall.SIGTERM)
	r := p.Wait()
	// seq 100000 writes 588895 bytes, and nothing else.
	if io := r.Statuses[0].IO; !io.Known || io.Wchar != 588895 {
		t.Errorf("seq: %+v, want 588895 bytes written", io)
	}
	if io := r.Statuses[1].IO; io.Known {
		t.Errorf("cat, a builtin inside gpipe, has I/O figures: %+v", io)
	}
	if io := r.Statuses[2].IO; !io.Known || io.Rchar < 588895 {
		t.Errorf("sh: %+v, want at least 588895 bytes read", io)
	}
}
