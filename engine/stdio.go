package engine

import (
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// stdio is a run's standard files as the stages get them: the caller's
// *os.File as it is, the null device for nil, and for any other reader
// or writer a pipe that a goroutine copies through.
type stdio struct {
	stdin, stdout, stderr *os.File

	closeAtEnd []*os.File     // ours, closed once every stage has ended
	copiers    sync.WaitGroup // the output copies, done when Wait returns
	readEnds   []*os.File     // the copies' pipe ends, closed to cut them short
}

func newStdio(in io.Reader, out, errOut io.Writer) (*stdio, error) {
	s := &stdio{}
	var err error
	if s.stdin, err = s.input(in); err == nil {
		if s.stdout, err = s.output(out); err == nil {
			if out != nil && errOut == out {
				// One writer for both, as os/exec does: their bytes
				// interleave as written, and it is never written to
				// by two goroutines at once.
				s.stderr = s.stdout
			} else {
				s.stderr, err = s.output(errOut)
			}
		}
	}
	if err != nil {
		s.abandon()
		return nil, err
	}
	return s, nil
}

// input is what the first stage reads for r.
func (s *stdio) input(r io.Reader) (*os.File, error) {
	switch r := r.(type) {
	case closedFile:
		return nil, nil
	case nil:
		return s.devNull(os.O_RDONLY)
	case *os.File:
		return r, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.closeAtEnd = append(s.closeAtEnd, pr, pw)
	// Not waited for: it may be blocked in r.Read, which nothing can
	// interrupt. Once the stages have ended, closing pw fails its write
	// in progress, if any; a stage that stops reading makes it fail with
	// EPIPE.
	go func() {
		_, _ = io.Copy(pw, r)
		pw.Close()
	}()
	return pr, nil
}

// output is what the stages write to for w.
func (s *stdio) output(w io.Writer) (*os.File, error) {
	switch w := w.(type) {
	case closedFile:
		return nil, nil
	case nil:
		return s.devNull(os.O_WRONLY)
	case *os.File:
		return w, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.closeAtEnd = append(s.closeAtEnd, pw)
	s.readEnds = append(s.readEnds, pr)
	s.copiers.Add(1)
	go func() {
		defer s.copiers.Done()
		// A writer that fails closes the pipe: a stage still writing gets
		// a broken pipe, as from a reader that went away.
		_, _ = io.Copy(w, pr)
		pr.Close()
	}()
	return pw, nil
}

func (s *stdio) devNull(flag int) (*os.File, error) {
	f, err := os.OpenFile(os.DevNull, flag, 0)
	if err != nil {
		return nil, err
	}
	s.closeAtEnd = append(s.closeAtEnd, f)
	return f, nil
}

// finish closes this side's copies once every stage has ended, and waits
// until the output copies have passed on every byte: until every writer
// of their pipes is gone. With delay > 0 it waits that long at most, then
// cuts the copies short, and reports that it did: a process a stage left
// behind (a daemon) still held the output.
func (s *stdio) finish(delay time.Duration) (cut bool) {
	for _, f := range s.closeAtEnd {
		f.Close()
	}
	if delay <= 0 {
		s.copiers.Wait()
		return false
	}
	done := make(chan struct{})
	go func() {
		s.copiers.Wait()
		close(done)
	}()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
	}
	for _, f := range s.readEnds {
		f.Close()
	}
	<-done
	return true
}

// abandon is finish for a run that never started.
func (s *stdio) abandon() { s.finish(0) }

// tails gives each of n stages a pipe of its own for its standard error,
// copied on to the run's (s.stderr), keeping the last max bytes of each.
// The pipes' write ends are the stages' (the caller closes its copies
// once they have started); the copies end as the outputs' do (finish).
func (s *stdio) tails(n, max int) ([]*os.File, []*tail, error) {
	files := make([]*os.File, n)
	tails := make([]*tail, n)
	for i := range n {
		pr, pw, err := os.Pipe()
		if err != nil {
			for _, f := range files[:i] {
				f.Close()
			}
			return nil, nil, err
		}
		files[i], tails[i] = pw, &tail{max: max}
		s.readEnds = append(s.readEnds, pr)
		s.copiers.Add(1)
		go func(t *tail) {
			defer s.copiers.Done()
			var w io.Writer = t
			if s.stderr != nil {
				w = io.MultiWriter(t, errorsTo{s.stderr})
			}
			_, _ = io.Copy(w, pr)
			pr.Close()
		}(tails[i])
	}
	return files, tails, nil
}

// errorsTo writes to f and never fails: a stage's tail is kept even when
// the run's stderr is gone.
type errorsTo struct{ f *os.File }

func (e errorsTo) Write(p []byte) (int, error) {
	_, _ = e.f.Write(p)
	return len(p), nil
}

// tail keeps the last max bytes written to it, and says them as whole
// lines (see String).
type tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	partial bool // the first byte kept is not at the start of a line
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.partial = t.buf[over-1] != '\n'
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String is the last whole lines kept: a line cut short at the start is
// left out, unless it is the only one (a line longer than max: its end).
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if i := strings.IndexByte(s, '\n'); t.partial && i >= 0 && i+1 < len(s) {
		s = s[i+1:]
	}
	return s
}
