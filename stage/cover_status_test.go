package stage

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStatusStrings: the --status wording of the cases status_test.go
// leaves out, and the names of states and events.
func TestStatusStrings(t *testing.T) {
	for _, tt := range []struct {
		s    Status
		want string
	}{
		{Status{Skipped: true}, "- (not started: the start was abandoned)"},
		{Status{Code: 168, Signal: syscall.Signal(40)}, "168 (signal 40)"},
		{Status{Code: 130, Signal: syscall.SIGINT, Err: syscall.EIO}, "130 (SIGINT)"},
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
	for s, want := range map[State]string{NotStarted: "not started", Running: "running", Stopped: "stopped", Ended: "ended"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d) = %q, want %q", s, got, want)
		}
	}
	for k, want := range map[EventKind]string{Started: "started", Exited: "exited", StoppedBy: "stopped", Continued: "continued"} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d) = %q, want %q", k, got, want)
		}
	}
}

// TestExitCodeRules: a failed start under FailFast gives its own status;
// a broken pipe counts for gpipe's only where the stage writes to
// gpipe's output, which a process substitution writing to its parent's
// pipe does not; downstream-most follows the graph's order, not the
// stages' numbers.
func TestExitCodeRules(t *testing.T) {
	tee := parse(t, "seq 3 | tee >(wc -l) | cat", nil, false) // wc inherits tee's stdout
	paste := parse(t, "paste <(seq 3) - | cat", nil, false)   // stage 2 runs before stage 1
	tests := []struct {
		name     string
		r        *Result
		statuses []Status
		failed   int
		want     int
	}{
		{"failed start", newResult(linear(3)), []Status{{Code: 1}, {Code: 127, Err: errors.New("x")}, {Code: 2}}, 1, 127},
		{"substitution's broken pipe", newResult(tee), []Status{{}, {}, {Code: 141, Signal: syscall.SIGPIPE}, {}}, -1, 0},
		{"sink's broken pipe", newResult(tee), []Status{{}, {}, {}, {Code: 141, Signal: syscall.SIGPIPE}}, -1, 141},
		{"graph order", newResult(paste), []Status{{Code: 4}, {Code: 5}, {}}, -1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.Statuses, tt.r.FailedStart = tt.statuses, tt.failed
			if got := tt.r.ExitCode(); got != tt.want {
				t.Errorf("ExitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestStartFailure: the status and message of a program that could not
// start, as bash gives them, and how the stage's error is worded.
func TestStartFailure(t *testing.T) {
	dir := t.TempDir()
	noHashBang := filepath.Join(dir, "elf")
	if err := os.WriteFile(noHashBang, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("#!\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		err  error
		code int
		text string
	}{
		{noHashBang, syscall.ENOENT, 126, "cannot execute: required file not found"},
		{empty, syscall.ENOENT, 126, "cannot execute: required file not found"},
		{dir + "/gone", syscall.ENOENT, 127, "No such file or directory"},
		{noHashBang, syscall.EMFILE, 125, "Too many open files"},
		{noHashBang, syscall.EACCES, 126, "Permission denied"},
		{noHashBang, errors.New("odd"), 126, "odd"},
	}
	for _, tt := range tests {
		code, text := startFailure(tt.path, tt.err)
		if code != tt.code || text != tt.text {
			t.Errorf("startFailure(%s, %v) = %d, %q; want %d, %q", tt.path, tt.err, code, text, tt.code, tt.text)
		}
	}
	st := linear(1).Stages[0]
	err := &os.PathError{Op: "open", Path: "f", Err: syscall.EMFILE}
	if got := bashError(st.Name(), redirectCode(err), err).Error(); got != "stage 1 (s): open f: too many open files" {
		t.Errorf("gpipe's own resources: %q", got)
	}
	err.Err = syscall.ENOENT
	if code := redirectCode(err); code != 1 || bashError(st.Name(), code, err) != error(err) {
		t.Errorf("a missing file: %d, %v", code, bashError(st.Name(), code, err))
	}
}
