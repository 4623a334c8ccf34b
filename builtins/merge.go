package builtins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

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
			if *inOrder {
				err = mergeInOrder(srcs, out, limit)
			} else {
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
