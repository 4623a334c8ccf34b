package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

// --label-stderr. Every stage writes its stderr into a pipe of its own
// instead of gpipe's stderr; a relay goroutine per stage reads that pipe
// and writes each line to gpipe's stderr with the stage's label in front,
// "[2 grep] grep: foo: No such file or directory". The relays share one
// lock (lockedWriter), and each write holds whole labelled lines only, so
// lines of different stages never mix within a line, whatever the stages
// write at once. gpipe's own messages go through the same lock, unlabelled.
//
// Lines, as the relays cut them:
//   - a line is written once its newline has come; the complete lines of
//     one read go out in one write;
//   - a last line without a newline, at the end of the stage's stderr, is
//     written with a newline added;
//   - a line longer than maxLabelledLine is written in pieces of at most
//     that many bytes, each labelled and ended with a newline of its own
//     (cut before a UTF-8 sequence that the piece would split), so that a
//     stage writing a megabyte without a newline holds no memory and no
//     other stage's line up;
//   - an empty line is the label alone: "[2 grep] ".
//
// The stage's descriptor 2 is its pipe before its redirections are
// applied, so that "2>/dev/null" silences that stage only and "2>&1" sends
// its stderr down its stdout, unlabelled, as in bash. A stage's process
// substitutions are stages of their own, with labels of their own.

// maxLabelledLine is the longest line a relay writes in one piece.
const maxLabelledLine = 64 << 10

// LabelDrain is how long gpipe waits, once every stage has ended, for the
// relays to reach the end of their pipes: the stages' children are gone
// by then (gpipe kills the pipeline's process group), but one that left
// the group (setsid) may hold a stage's stderr open for ever. After that
// the relays write what they hold and stop.
const LabelDrain = 2 * time.Second

// Labeller relays the stderr of every stage of a graph to gpipe's own,
// labelled (--label-stderr).
type Labeller struct {
	out *lockedWriter
	// writers are the pipes' write ends, one per stage in Graph.Stages
	// order, for stage.Options.Stderrs; CloseWriters closes gpipe's copies.
	writers []*os.File
	readers []*os.File // the relays' ends, closed by Finish
	relays  sync.WaitGroup
}

// NewLabeller makes a pipe for every stage of g and starts its relay,
// which writes to w. The caller hands the write ends (Writers) to the
// stages, then calls CloseWriters, and Finish once the stages have ended.
// On error nothing is left open or running.
func NewLabeller(w io.Writer, g *parser.Graph) (*Labeller, error) {
	l := &Labeller{out: &lockedWriter{w: w}}
	for range g.Stages {
		r, w, err := relayPipe()
		if err != nil {
			l.CloseWriters()
			for _, r := range l.readers {
				r.Close()
			}
			return nil, fmt.Errorf("--label-stderr: %w", err)
		}
		l.readers = append(l.readers, r)
		l.writers = append(l.writers, w)
	}
	for i, st := range g.Stages {
		l.relays.Add(1)
		go l.relay(stageLabel(st), l.readers[i])
	}
	return l, nil
}

// relayPipe is a pipe, both ends close-on-exec, whose read end gpipe
// polls (so that a deadline can end a wait in a read) and whose write end
// blocks, as a stage's stderr does.
func relayPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("create pipe: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("create pipe: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "stderr relay"), os.NewFile(uintptr(fds[1]), "stderr"), nil
}

// Writers are the pipes' write ends, one per stage in Graph.Stages order:
// stage.Options.Stderrs. They are nil once CloseWriters has run.
func (l *Labeller) Writers() []*os.File { return l.writers }

// Out is the writer for gpipe's own messages while the stages run: w,
// under the relays' lock, so that no message lands inside a stage's
// line. It is safe for concurrent use.
func (l *Labeller) Out() io.Writer { return l.out }

// CloseWriters closes gpipe's copies of the write ends, once the stages
// have been started with their own: a relay then sees the end of its pipe
// when its stage, and whatever inherited its stderr, has closed it.
func (l *Labeller) CloseWriters() {
	for _, w := range l.writers {
		w.Close()
	}
	l.writers = nil
}

// Finish waits until every relay has reached the end of its pipe, or for
// bound at most; then the relays still reading stop, after writing what
// their pipes hold at that moment and what they hold themselves (a
// partial line gets its newline), and every pipe is closed. When it
// returns, no relay runs and nothing of the labeller is open.
func (l *Labeller) Finish(bound time.Duration) {
	ended := make(chan struct{})
	go func() {
		l.relays.Wait()
		close(ended)
	}()
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-ended:
	case <-t.C:
		for _, r := range l.readers {
			// A deadline already past ends the wait of a Read at once.
			_ = r.SetReadDeadline(time.Now())
		}
		<-ended
	}
	for _, r := range l.readers {
		r.Close()
	}
	l.readers = nil
}

// relay reads one stage's stderr from r until its end, or until a read
// deadline and then what the pipe holds, and writes it to l.out, every
// line behind label; see the top of this file for how lines are cut.
func (l *Labeller) relay(label string, r *os.File) {
	defer l.relays.Done()
	buf := make([]byte, maxLabelledLine)
	var out []byte
	read := r.Read
	n := 0 // bytes pending in buf, with no newline among them
	for {
		m, err := read(buf[n:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			read, err = held(r), nil
		}
		out = out[:0]
		done := 0 // bytes of buf written out
		for i := n; i < n+m; {
			j := bytes.IndexByte(buf[i:n+m], '\n')
			if j < 0 {
				break
			}
			out = appendLine(out, label, buf[done:i+j+1])
			i += j + 1
			done = i
		}
		n += m
		switch {
		case err != nil && done < n:
			// The end: the last line, without its newline.
			out = appendLine(out, label, buf[done:n])
			done = n
		case done == 0 && n == len(buf):
			// A line too long to hold: a piece of it.
			done = pieceEnd(buf)
			out = appendLine(out, label, buf[:done])
		}
		if len(out) > 0 {
			_, _ = l.out.Write(out) // gpipe's stderr failing: the lines are lost, the stage runs on
		}
		n = copy(buf, buf[done:n])
		if err != nil {
			return
		}
	}
}

// held returns a reader of what r, a pipe, holds at the time of the call,
// and no more: a writer that holds the pipe may go on writing for ever.
// It reads without waiting, and ignores r's read deadline.
func held(r *os.File) func([]byte) (int, error) {
	rc, err := r.SyscallConn()
	if err != nil {
		return func([]byte) (int, error) { return 0, io.EOF }
	}
	left := 0
	_ = rc.Control(func(fd uintptr) { left, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }) // FIONREAD
	return func(b []byte) (int, error) {
		if left <= 0 {
			return 0, io.EOF
		}
		var n int
		var err error
		if cerr := rc.Control(func(fd uintptr) { n, err = unix.Read(int(fd), b[:min(len(b), left)]) }); cerr != nil || err != nil || n <= 0 {
			return 0, io.EOF
		}
		left -= n
		return n, nil
	}
}

// appendLine appends line to out behind label, with a newline at its end
// if it has none.
func appendLine(out []byte, label string, line []byte) []byte {
	out = append(out, label...)
	out = append(out, line...)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

// pieceEnd is where to cut b, a line too long to write whole: at its end,
// or before a UTF-8 sequence that b holds only the start of.
func pieceEnd(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// stageLabel is what goes in front of each line of stage st: its number
// and name, as --status names the stage ("stage 2 (grep)"), between
// brackets and followed by a space: "[2 grep] ". In a pipeline file, a
// named stage shows its name, "[3 errs: grep] "; a stage gpipe added
// (the tee of a stage read in several places) says so, "[5 tee, added by
// gpipe] "; a stage without a command (redirections only) is "[4] ".
// Control characters of a command's name show as '?', so that a label
// is always on one line.
func stageLabel(st *parser.Stage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s", st.Number())
	if st.Label != "" {
		b.WriteString(" " + st.Label + ":")
	}
	if len(st.Args) > 0 {
		b.WriteString(" " + st.Args[0])
	}
	if st.Added != "" {
		b.WriteString(", added by gpipe")
	}
	b.WriteString("] ")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, b.String())
}

// lockedWriter is gpipe's stderr shared by the relays and gpipe's own
// messages: one Write at a time. It is safe for concurrent use.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}
