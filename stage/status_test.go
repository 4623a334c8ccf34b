package stage

import (
	"syscall"
	"testing"

	"github.com/gpipe/gpipe/parser"
)

func TestExitCode(t *testing.T) {
	exited := func(code int) Status { return Status{Code: code} }
	killed := func(sig syscall.Signal) Status { return Status{Code: 128 + int(sig), Signal: sig} }
	tests := []struct {
		name     string
		statuses []Status
		signal   syscall.Signal
		want     int
	}{
		{"all succeed", []Status{exited(0), exited(0), exited(0)}, 0, 0},
		{"one fails", []Status{exited(3), exited(0)}, 0, 3},
		{"downstream-most failure wins", []Status{exited(3), exited(4), exited(0)}, 0, 4},
		{"sigpipe upstream is no failure", []Status{killed(syscall.SIGPIPE), exited(0)}, 0, 0},
		{"exit 141 upstream is no failure", []Status{exited(141), exited(0)}, 0, 0},
		{"failure upstream of a broken pipe", []Status{exited(5), killed(syscall.SIGPIPE), exited(0)}, 0, 5},
		{"death by signal", []Status{killed(syscall.SIGTERM), exited(0)}, 0, 143},
		{"sink's broken pipe is gpipe's", []Status{exited(0), killed(syscall.SIGPIPE)}, 0, 141},
		{"own failure beats sink's broken pipe", []Status{exited(2), killed(syscall.SIGPIPE)}, 0, 2},
		{"input broken is the writer's failure", []Status{exited(0), killed(syscall.SIGKILL), {Code: ExitInputBroken, InputBroken: true}}, 0, 137},
		{"teardown signal", []Status{exited(0), exited(0)}, syscall.SIGINT, 130},
		{"teardown signal beats failures", []Status{exited(1), exited(1)}, syscall.SIGHUP, 129},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := linear(len(tt.statuses))
			r := newResult(g)
			r.Statuses = tt.statuses
			if tt.signal != 0 {
				r.Signal = tt.signal
			}
			if got := r.ExitCode(); got != tt.want {
				t.Errorf("ExitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{Status{Code: 0}, "0"},
		{Status{Code: 3}, "3"},
		{Status{Code: 141, Signal: syscall.SIGPIPE}, "141 (SIGPIPE)"},
		{Status{Code: 137, Signal: syscall.SIGKILL}, "137 (SIGKILL)"},
		{Status{Code: 1, Err: syscall.ENOENT}, "1 (not started)"},
		{Status{Code: 3, InputBroken: true}, "3 (input broken off)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// linear returns the graph of an n-stage pipeline "s1 | s2 | … | sn".
func linear(n int) *parser.Graph {
	g := &parser.Graph{Name: "test"}
	for i := range n {
		g.Stages = append(g.Stages, &parser.Stage{ID: i, Args: []string{"s"}})
		if i > 0 {
			g.Edges = append(g.Edges, &parser.Edge{From: parser.Port{Stage: i - 1, FD: 1}, To: parser.Port{Stage: i, FD: 0}})
		}
	}
	return g
}
