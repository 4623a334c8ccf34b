package stage

import (
	"encoding/json"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

// A helper process (RunChild) starts its stage's program, or its builtin,
// after gpipe has long returned from starting the helper: a redirection
// or the program's exec may still fail there, and gpipe must learn of it
// as of a stage it could not start itself, for the same status, message
// and --fail-fast. The helper tells it on a pipe of its own, as os/exec's
// fork tells the parent of a failed exec: the write end is close-on-exec
// in the helper, so an exec that succeeds closes it with nothing more
// written; a builtin's helper closes it once the builtin runs.
//
// What goes down the pipe is a stream of JSON childReports: one for each
// file a redirection creates, just before it is created (an abandoned
// start removes them, as the files of a stage started directly), and,
// when the stage did not start, a last one that says why.

// childReport is one message of a helper process to gpipe.
type childReport struct {
	Created string `json:",omitempty"` // a file a redirection is about to create
	Failed  bool   `json:",omitempty"` // the stage did not start; then:
	Code    int    `json:",omitempty"` // its status (see startFailure, redirectCode)
	Text    string `json:",omitempty"` // the message, as bashError words it
	// Reported says the helper wrote the message itself, to the stage's
	// standard error as its redirections had left it (see
	// fdTable.reportRedirect); otherwise gpipe reports it.
	Reported bool `json:",omitempty"`
}

// send writes m to the report pipe fd with a system call only (see
// applyRaw), in one write: a message is far below PIPE_BUF, so it
// arrives whole.
func (m childReport) send(fd int) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	for {
		_, err = unix.Write(fd, data)
		if err != unix.EINTR {
			return err
		}
	}
}

// startReport is gpipe's end of one helper's report pipe.
type startReport struct {
	r    *os.File
	done chan struct{} // closed once the pipe is at its end; then:

	created []string     // the files the helper's redirections created, or were about to
	failed  *childReport // why the stage did not start; nil if it did
}

// newStartReport makes the report pipe of a helper: the write end goes to
// t, above the stage's descriptors, and is closed with t once the helper
// has started; its number is returned for the helper's instructions.
func newStartReport(t *fdTable) (*startReport, int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, 0, err
	}
	// gpipe's end waits in the runtime's poller, not in a thread of its
	// own; the helper's end stays blocking.
	_ = unix.SetNonblock(p[0], true)
	w := os.NewFile(uintptr(p[1]), "gpipe-report")
	t.owned = append(t.owned, w)
	return &startReport{r: os.NewFile(uintptr(p[0]), "gpipe-report"), done: make(chan struct{})}, t.addAbove(w), nil
}

// read reads the helper's reports until the pipe's end: when the stage's
// program has been executed, the builtin runs, or the helper has ended.
func (rep *startReport) read() {
	defer close(rep.done)
	defer rep.r.Close()
	dec := json.NewDecoder(rep.r)
	for {
		var m childReport
		if err := dec.Decode(&m); err != nil {
			return
		}
		if m.Created != "" {
			rep.created = append(rep.created, m.Created)
		}
		if m.Failed {
			rep.failed = &m
		}
	}
}

// notStarted makes st the status of a stage whose helper reported that it
// did not start: that of a stage gpipe could not start itself, with no
// process, times or figures (the helper's are not the stage's).
func (rep *startReport) notStarted(st *Status) {
	f := rep.failed
	*st = Status{Stage: st.Stage, Code: f.Code, Err: errors.New(f.Text), Reported: f.Reported}
}

// stderrMoved reports whether redirs, performed in order, leave a stage's
// descriptor 2 elsewhere than the standard error it started with, or
// closed: where the message of a redirection that failed after them is
// the stage's to print, as bash prints it (see fdTable.reportRedirect, the
// same rule over the descriptors themselves).
func stderrMoved(redirs []parser.Redirect) bool {
	own := map[int]bool{2: true} // the descriptors that are the stage's own stderr
	for _, r := range redirs {
		if r.Op == parser.RedirDup {
			own[r.FD] = own[r.DupFD]
		} else {
			own[r.FD] = false // opened anew, or closed
		}
	}
	return !own[2]
}
