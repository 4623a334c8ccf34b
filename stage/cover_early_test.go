package stage

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// slowWriter writes one line and then sleeps without writing: only an
// early stop ends it by SIGPIPE, and a builtin downstream of it that ends
// by SIGPIPE (141) was stopped early too, not by a write. The statuses
// are what the tests check; the run's deadline only catches a hang.
const slowWriter = "sh -c 'echo a; exec sleep 30'"

// signals lists the signals that ended a run's stages.
func signals(r *Result) []syscall.Signal {
	var s []syscall.Signal
	for _, st := range r.Statuses {
		s = append(s, st.Signal)
	}
	return s
}

// TestStopEarly: with Options.StopEarly, a stage whose output nothing
// reads any more is stopped at once, as if by SIGPIPE: a program writing
// to a pipe or a FIFO, a builtin writing to a ring, a pipe or a FIFO by
// path, inside gpipe or in a helper process; and the stage upstream of
// it in turn.
func TestStopEarly(t *testing.T) {
	const pipe = syscall.SIGPIPE
	tests := []struct {
		name    string
		spec    string
		su      setup
		stdout  string
		codes   []int
		signals []syscall.Signal
	}{
		{"program to builtin", slowWriter + " | head -n 1", setup{},
			"a\n", []int{141, 0}, []syscall.Signal{pipe, 0}},
		{"program to program", slowWriter + " | sh -c 'read x; echo $x'", setup{},
			"a\n", []int{141, 0}, []syscall.Signal{pipe, 0}},
		{"through a builtin's ring", slowWriter + " | cat | head -n 1", setup{},
			"a\n", []int{141, 141, 0}, []syscall.Signal{pipe, pipe, 0}},
		{"through a builtin's pipe", slowWriter + " | cat | sh -c 'read x; echo $x'", setup{},
			"a\n", []int{141, 141, 0}, []syscall.Signal{pipe, pipe, 0}},
		{"through a helper's ring", slowWriter + " | cat | head -n 1", setup{isolate: true},
			"a\n", []int{141, 141, 0}, []syscall.Signal{pipe, pipe, 0}},
		{"program to a FIFO", "head -n 1 <(" + slowWriter + ")", setup{fifoDir: true},
			"a\n", []int{0, 141}, []syscall.Signal{0, pipe}},
		{"builtin to a FIFO by path", slowWriter + " | tee >(head -n 1 > /dev/null) | head -n 1", setup{fifoDir: true},
			"a\n", []int{141, 141, 0, 0}, []syscall.Signal{pipe, pipe, 0, 0}},
		{"builtin to a pipe port", slowWriter + " | tee >(head -n 1 > /dev/null) | head -n 1", setup{},
			"a\n", []int{141, 141, 0, 0}, []syscall.Signal{pipe, pipe, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.su.opts.StopEarly = true
			r := runSetup(t, tt.spec, tt.su)
			if r.stdout != tt.stdout || !slices.Equal(codes(r.Result), tt.codes) || !slices.Equal(signals(r.Result), tt.signals) || r.stderr != "" {
				t.Errorf("stdout %q, codes %v, signals %v, stderr %q; want %q, %v, %v", r.stdout, codes(r.Result), signals(r.Result), r.stderr, tt.stdout, tt.codes, tt.signals)
			}
			if code := r.ExitCode(); code != 0 {
				t.Errorf("ExitCode() = %d, want 0", code)
			}
		})
	}
}

// TestStopEarlyKeeps: a builtin that may still write elsewhere is not
// stopped early when the reader of its standard output goes: one whose
// redirection writes to a file, one with an operand that is a file,
// one whose standard output is no edge; and a program with a reader left
// is not either. The test waits for the reader's end, asks the
// supervisor what it stopped (its answer comes after the early stops that
// end caused), and tears the pipeline down.
func TestStopEarlyKeeps(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		spec   string
		reader int // the stage whose end is awaited
		kept   []int
	}{
		{"output to a file", slowWriter + " | cat 3> " + dir + "/f | head -n 1", 2, []int{0, 1}},
		{"an operand that is a file", slowWriter + " | tee " + dir + "/g | head -n 1", 2, []int{0, 1}},
		{"no stdout edge", slowWriter + " | tee >(head -n 1)", 2, []int{0, 1}},
		{"a reader left", slowWriter + " | tee >(head -n 1) | sh -c 'read x; exec sleep 30'", 2, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, cmds, plan := prepareWith(t, tt.spec, setup{})
			ended := make(chan int, len(g.Stages))
			null := devNull(t)
			p := Start(g, cmds, plan, Options{Stdin: null, Stdout: null, Stderr: null, Grace: time.Second, StopEarly: true,
				OnEvent: func(e Event) {
					if e.Kind == Exited {
						ended <- e.Stage
					}
				}})
			defer func() {
				p.Signal(syscall.SIGTERM)
				waitResult(t, p)
			}()
			select {
			case i := <-ended:
				if i != tt.reader {
					t.Fatalf("stage %d ended first: %v", i+1, p.Snapshot().Stages[i].Status)
				}
			case <-time.After(scaled(20 * time.Second)):
				t.Fatalf("stage %d did not end within %v", tt.reader+1, scaled(20*time.Second))
			}
			stopped := earlyStopped(p)
			for _, i := range tt.kept {
				if stopped[i] {
					t.Errorf("stage %d stopped early", i+1)
				}
			}
		})
	}
}

// earlyStopped asks the supervisor which stages it stopped early.
func earlyStopped(p *Pipeline) map[int]bool {
	reply := make(chan map[int]bool, 1)
	select {
	case p.s.ctl <- func() {
		m := map[int]bool{}
		for i, n := range p.s.nodes {
			if n.pipeStopped {
				m[i] = true
			}
		}
		reply <- m
	}:
		return <-reply
	case <-p.done:
		return nil
	}
}
