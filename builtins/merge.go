package builtins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gpipe/gpipe/plumbing"
)

func mergeBuiltin() *Builtin {
	b := &Builtin{
		Name:     "merge",
		Synopsis: "merge [-n] [--buffer SIZE] INPUT...",
		Summary: "Merge the INPUTs (<(…) ports, files, - for stdin), read concurrently: whole lines in the order they " +
			"arrive, never a torn line (a last line without a newline gets one); with -n, all of the first input, " +
			"then all of the second, and so on (what waits for its turn queues, in memory up to SIZE, then on disk).",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		inOrder := fs.Bool("n", false, "in input order, still reading every input at once")
		forPar := fs.Bool("par", false, "as the merge of par's copies: a line longer than a block streams out at once "+
			"(the others wait for its end), and a last line without a newline gets one only when more output follows")
		frames := fs.Bool("frames", false, "as the merge of an ordered par's copies: a framed block from each INPUT in turn")
		first := fs.String("first", "", "write all of the input `FIRST` before the INPUTs (par's header)")
		buffer := fs.String("buffer", "64MiB", "with -n, how much an input queues in memory before spilling to a temporary file")
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		limit, err := parseBuffer(b.Name, *buffer)
		if err != nil {
			return nil, err
		}
		names := fs.Args()
		if len(names) == 0 {
			return nil, usagef(b.Name, "want at least one INPUT")
		}
		return func(in plumbing.Source, out plumbing.Sink, files Files) error {
			plumbing.NoFlushBeforeWait(in) // read by other goroutines
			srcs := make([]plumbing.Source, len(names))
			var errs []error
			for i, name := range names {
				if name == "-" {
					srcs[i] = in
					continue
				}
				s, err := files.Open(name)
				if err != nil {
					// As cat does: say so, go on with the others, fail.
					errs = append(errs, err)
					continue
				}
				srcs[i] = s
			}
			defer func() {
				for _, s := range srcs {
					if s != nil && s != in {
						s.Close()
					}
				}
			}()
			var err error
			if *first != "" {
				if err := copyFirst(files, *first, out); err != nil {
					return errors.Join(append(errs, err)...)
				}
			}
			switch {
			case *inOrder:
				err = mergeInOrder(srcs, out, limit)
			case *frames:
				err = orderedMerge(srcs, out)
			case *forPar:
				err = mergeStreaming(srcs, out)
			default:
				err = mergeLines(srcs, out)
			}
			return errors.Join(append(errs, err)...)
		}, nil
	}
	return b
}

// chunk is whole lines of one input.
type chunk struct {
	b   *block // from the pool, or nil for a line longer than a block
	big []byte
	err error // the input's read error, instead of data
}

func (c chunk) data() []byte {
	if c.b != nil {
		return c.b.data()
	}
	return c.big
}

// mergeLines reads every input in a goroutine of its own, cuts what it
// reads after its last newline, and writes the whole-line chunks as they
// come.
func mergeLines(srcs []plumbing.Source, out plumbing.Sink) error {
	chunks := make(chan chunk, 4*len(srcs))
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for _, src := range srcs {
		if src == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			readLines(src, chunks, quit)
		}()
	}
	go func() { wg.Wait(); close(chunks) }()
	var errs []error
	var werr error
	for c := range chunks {
		switch {
		case c.err != nil:
			errs = append(errs, c.err)
		case werr == nil:
			werr = plumbing.Write(out, c.data())
			if werr == nil && len(chunks) == 0 {
				werr = out.Flush() // a trickle passes at once
			}
			if werr != nil {
				close(quit) // the readers stop; the loop drains what is left
			}
		}
		if c.b != nil {
			c.b.unref()
		}
	}
	if werr != nil {
		return werr
	}
	return errors.Join(errs...)
}

// copyFirst writes all of the input name to out (par's header, before
// the copies' output).
func copyFirst(files Files, name string, out plumbing.Sink) error {
	src, err := files.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := each(src, func(p []byte) error { return plumbing.Write(out, p) }); err != nil {
		return err
	}
	return out.Flush() // the header passes at once, whatever the copies do
}

// mergeStreaming is mergeLines for par's copies, whose output should be
// the serial command's, line for line: one goroutine per input writes its
// whole lines under a lock; a line that runs past a block is written as
// it comes, the lock held to its end, so that no line is ever held in
// memory whole; and an input's last line without a newline gets one only
// when more output follows it (a newline is owed), so that the output
// ends as the serial command's did.
func mergeStreaming(srcs []plumbing.Source, out plumbing.Sink) error {
	m := &streamMerge{out: out}
	var wg sync.WaitGroup
	errs := make([]error, len(srcs))
	for i, src := range srcs {
		if src == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.copyLines(src)
		}()
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.werr != nil {
		return m.werr
	}
	return errors.Join(errs...)
}

type streamMerge struct {
	out plumbing.Sink
	mu  sync.Mutex // held while writing, and through a long line
	// waiting counts the inputs waiting for the lock: the last writer
	// flushes only when none does (a trickle passes at once).
	waiting atomic.Int32
	owed    bool  // a last line without a newline was written: one is owed to what follows
	werr    error // the first write error: every input stops
}

// write writes p with the lock held; the owed newline first.
func (m *streamMerge) write(p []byte) error {
	if m.werr != nil {
		return m.werr
	}
	if m.owed {
		m.owed = false
		if m.werr = plumbing.Write(m.out, newline); m.werr != nil {
			return m.werr
		}
	}
	m.werr = plumbing.Write(m.out, p)
	return m.werr
}

func (m *streamMerge) lock() {
	m.waiting.Add(1)
	m.mu.Lock()
	m.waiting.Add(-1)
}

// unlock flushes when no input waits to write, and releases the lock.
func (m *streamMerge) unlock() {
	if m.werr == nil && m.waiting.Load() == 0 {
		m.werr = m.out.Flush()
	}
	m.mu.Unlock()
}

// copyLines writes src's lines until its end, a read error (returned), or
// a write error (which mergeStreaming returns).
func (m *streamMerge) copyLines(src plumbing.Source) error {
	var carry []byte   // a line begun and not ended, shorter than a block
	streaming := false // the lock is held: a long line is being written
	defer func() {
		if streaming {
			m.unlock()
		}
	}()
	for {
		p, err := src.Peek(1)
		if len(p) > blockSize {
			p, err = p[:blockSize], nil // the rest on the next round
		}
		if len(p) > 0 {
			i := bytes.LastIndexByte(p, '\n')
			switch {
			case streaming && i >= 0:
				// The long line ends here, and whole lines follow.
				werr := m.write(p[:i+1])
				streaming = false
				m.unlock()
				if werr != nil {
					return nil
				}
				carry = append(carry[:0], p[i+1:]...)
			case streaming:
				if m.write(p) != nil {
					return nil
				}
			case i < 0 && len(carry)+len(p) > blockSize:
				// A long line: out as it comes, the others held back.
				m.lock()
				streaming = true
				if m.write(carry) != nil || m.write(p) != nil {
					return nil
				}
				carry = carry[:0]
			case i < 0:
				carry = append(carry, p...)
			default:
				m.lock()
				werr := m.write(carry)
				if werr == nil {
					werr = m.write(p[:i+1])
				}
				m.unlock()
				if werr != nil {
					return nil
				}
				carry = append(carry[:0], p[i+1:]...)
			}
			src.Release(len(p))
			if err == nil {
				continue
			}
		}
		if err == io.EOF {
			if !streaming && len(carry) > 0 {
				m.lock()
				streaming = true
				m.write(carry)
			}
			if streaming {
				// Ended without a newline: owed to whatever follows.
				m.owed = m.werr == nil
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLines sends src's data as chunks of whole lines until its end, a
// read error, or quit.
func readLines(src plumbing.Source, chunks chan<- chunk, quit <-chan struct{}) {
	var carry []byte // a line begun and not ended
	send := func(c chunk) bool {
		select {
		case chunks <- c:
			return true
		case <-quit:
			if c.b != nil {
				c.b.unref()
			}
			return false
		}
	}
	for {
		p, err := src.Peek(1)
		if len(p) > blockSize {
			p, err = p[:blockSize], nil // the rest on the next round
		}
		if len(p) > 0 {
			i := bytes.LastIndexByte(p, '\n')
			if i < 0 {
				carry = append(carry, p...)
				src.Release(len(p))
			} else {
				var c chunk
				if len(carry)+i+1 <= blockSize {
					c.b = newBlock()
					c.b.n = copy(c.b.buf, carry)
					c.b.n += copy(c.b.buf[c.b.n:], p[:i+1])
				} else {
					c.big = append(carry, p[:i+1]...)
				}
				carry = append([]byte(nil), p[i+1:]...)
				src.Release(len(p))
				if !send(c) {
					return
				}
			}
			if err == nil {
				continue
			}
		}
		if err == io.EOF {
			if len(carry) > 0 {
				send(chunk{big: append(carry, '\n')})
			}
			return
		}
		if err != nil {
			send(chunk{err: err})
			return
		}
	}
}

// mergeInOrder reads every input at once into a queue of its own, and
// writes the queues out one after the other.
func mergeInOrder(srcs []plumbing.Source, out plumbing.Sink, limit int) error {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	queues := make([]*queue, len(srcs))
	readErrs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		q := newQueue(&mu, cond, limit)
		queues[i] = q
		if src == nil {
			q.closed = true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b, err := readBlock(src)
				mu.Lock()
				if b.n > 0 {
					q.push(b)
				}
				stop := q.dropped
				if err != nil || stop {
					q.close()
				}
				mu.Unlock()
				b.unref()
				if err != nil && err != io.EOF {
					readErrs[i] = fmt.Errorf("input %d: %w", i+1, err)
				}
				if err != nil || stop {
					return
				}
			}
		}()
	}
	scratch := make([]byte, blockSize)
	var werr error
	for _, q := range queues {
		last := byte('\n')
		for werr == nil {
			err := q.next(scratch, func(p []byte) error {
				if err := plumbing.Write(out, p); err != nil {
					return err
				}
				last = p[len(p)-1]
				if q.idle() {
					return out.Flush()
				}
				return nil
			})
			if err == io.EOF {
				if last != '\n' {
					// Whole lines: the next input starts on a line of its own.
					werr = plumbing.Write(out, []byte{'\n'})
				}
				break
			}
			werr = err
		}
	}
	for _, q := range queues {
		q.release() // the readers still reading stop
	}
	wg.Wait()
	if werr != nil {
		return werr
	}
	return errors.Join(readErrs...)
}
