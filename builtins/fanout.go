package builtins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gpipe/gpipe/plumbing"
)

// fanOut is the output side of tee and split: one queue and one writer
// goroutine per output, so that an output that reads slowly, or not yet,
// or never, holds up none of the others (see queue).
type fanOut struct {
	mu      sync.Mutex
	cond    *sync.Cond
	outs    []*fanOutput
	wg      sync.WaitGroup
	stopped bool // an output was stopped by a teardown
	// counts says every byte goes through the queues (par's dealer), so
	// that what they were given is what the outputs got (report).
	counts bool
	// direct says each queued block goes to a file or pipe in one write,
	// with no copy into the sink's buffer: par's units are large.
	direct bool
}

// fanOutput is one output: its queue, and how it ended.
type fanOutput struct {
	name string
	q    *queue
	sink plumbing.Sink // once opened
	// pipe says the sink writes a pipe: one that tee(2) can feed while
	// its queue is empty.
	pipe bool
	// file says it writes a file, which tee can splice into.
	file bool
	// gone says the reader went away (broken pipe): the output was
	// dropped, as GNU tee -p drops it, and that is no failure.
	gone bool
	err  error // a failure of its own: cannot open, cannot write
	done bool  // its writer has ended
}

// newFanOut starts a writer for each output. open opens output i in the
// writer's own goroutine (an open of a FIFO may wait for its reader); the
// writer closes what open returns, when closeIt says so, as soon as that
// output has every byte. (The stage's own stdout may be closed twice: a
// Sink's later Close does nothing.)
func newFanOut(names []string, limit int, open func(i int) (plumbing.Sink, bool, error)) *fanOut {
	f := &fanOut{}
	f.cond = sync.NewCond(&f.mu)
	for i, name := range names {
		o := &fanOutput{name: name, q: newQueue(&f.mu, f.cond, limit)}
		o.q.gated = true
		f.outs = append(f.outs, o)
		f.wg.Add(1)
		go f.write(o, func() (plumbing.Sink, bool, error) { return open(i) })
	}
	return f
}

func (f *fanOut) write(o *fanOutput, open func() (plumbing.Sink, bool, error)) {
	defer f.wg.Done()
	defer o.q.release()
	sink, closeIt, err := open()
	if err == nil {
		_, isPipe := pipeSink(sink)
		_, isFile := spliceSink(sink)
		f.mu.Lock()
		o.sink, o.pipe, o.file = sink, isPipe, isFile
		f.mu.Unlock()
		scratch := make([]byte, blockSize)
		for err == nil {
			err = o.q.next(scratch, func(p []byte) error {
				if fs, ok := sink.(*plumbing.FileSink); ok && f.direct {
					_, err := fs.Write(p)
					return err
				}
				if err := plumbing.Write(sink, p); err != nil {
					return err
				}
				if o.q.idle() {
					return sink.Flush() // a trickle passes at once
				}
				return nil
			})
		}
		if err == io.EOF {
			err = sink.Flush()
		}
		if closeIt {
			err = plumbing.CloseAfter(sink, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err == nil:
	case plumbing.IsBrokenPipe(err):
		o.gone = true
	case errors.Is(err, plumbing.ErrStopped):
		f.stopped = true
		o.err = err
	default:
		o.err = fmt.Errorf("%s: %w", o.name, err)
	}
	o.done = true
	o.q.drop()
}

// waitRoom waits until the input may be read on, and reports false when
// no output takes data any more. The rule keeps the fan-out from stalling
// while spilling to disk only what a deadlock would otherwise hold up:
//   - the fastest output must have less than ahead bytes queued (no output
//     wants more: wait);
//   - every output must have less than its memory limit queued, so that
//     the input goes at the pace of the slowest output once memory is
//     full, as GNU tee's does, and nothing spills while all make progress;
//   - except an output that has taken nothing for stallAfter while
//     another has nothing left to write: its reader waits for something
//     else (the join of a diamond that reads another side to the end
//     first), and waiting for it could be for ever. Its data then goes on
//     to disk. (A reader that merely did not run for a while, on a busy
//     machine, while the others still have data, is waited for.)
func (f *fanOut) waitRoom(ahead int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		live, fastest, now := false, int64(-1), time.Now()
		full, wake := false, time.Duration(0)
		for _, o := range f.outs {
			q := o.q
			if q.dropped {
				continue
			}
			live = true
			if p := q.pending(); fastest < 0 || p < fastest {
				fastest = p
			}
			if q.pending() >= int64(q.limit) {
				idle := now.Sub(q.taken)
				switch {
				case idle < stallAfter:
					full, wake = true, max(wake, stallAfter-idle)
				case !f.othersWait(o):
					full, wake = true, max(wake, lagCheck)
				default:
					q.spillOK = true
				}
			}
		}
		switch {
		case !live:
			return false
		case fastest < ahead && !full:
			return true
		}
		if full {
			// Look again when the full output would count as stalled.
			t := time.AfterFunc(wake, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
			f.cond.Wait()
			t.Stop()
		} else {
			f.cond.Wait()
		}
	}
}

// othersWait reports whether an output other than o has written out all
// it was given, down to the last eighth of its pipe if it is one: its
// reader waits, or soon will, for data held up behind o. Call with the
// lock held.
func (f *fanOut) othersWait(o *fanOutput) bool {
	for _, p := range f.outs {
		if p == o || p.q.dropped || !p.q.quiet() {
			continue
		}
		fd, isPipe := pipeSink(p.sink)
		if !isPipe || below([]int{fd}, 8) {
			return true
		}
	}
	return false
}

// roundRoom is how much one round of teePipes may move: what the fullest
// queue that must stay in memory can still take (at least a block), so
// that an output that falls behind in the round overshoots its --buffer
// by a block at most.
func (f *fanOut) roundRoom() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	room := int64(teeChunk)
	for _, o := range f.outs {
		if q := o.q; !q.dropped && !q.spillOK {
			room = min(room, max(int64(q.limit)-q.pending(), blockSize))
		}
	}
	return int(room)
}

// stallAfter is how long an output with a full memory buffer may take
// nothing before the fan-out counts it stalled and spills past it.
const stallAfter = 200 * time.Millisecond

// finish closes every queue, waits for the writers, and returns the
// outcome: ErrStopped if a teardown stopped one, the outputs' own failures,
// or, when every output's reader went away before the end (and none
// failed otherwise), a broken pipe.
func (f *fanOut) finish(inputDone bool) error {
	f.mu.Lock()
	for _, o := range f.outs {
		o.q.close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	if f.stopped {
		return plumbing.ErrStopped
	}
	var errs []error
	allGone := len(f.outs) > 0
	for _, o := range f.outs {
		if o.err != nil {
			errs = append(errs, o.err)
		}
		allGone = allGone && o.gone
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if allGone || (!inputDone && !f.anyOK()) {
		return fmt.Errorf("every output: %w", syscall.EPIPE)
	}
	return nil
}

// report hands what each output queued to files, if it keeps such
// figures. Call after finish.
func (f *fanOut) report(files Files) {
	r, ok := files.(OutputReporter)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	stats := make([]OutputStats, len(f.outs))
	for i, o := range f.outs {
		stats[i] = OutputStats{Output: o.name, Peak: o.q.peak, Spilled: o.q.spilled}
		if f.counts {
			stats[i].Counted, stats[i].Bytes, stats[i].Starved = true, o.q.pushed, o.q.starved
		}
	}
	r.ReportOutputs(stats)
}

func (f *fanOut) anyOK() bool {
	for _, o := range f.outs {
		if !o.gone && o.err == nil {
			return true
		}
	}
	return false
}

// readBlock fills a new block from in: straight from the file when in
// reads one (no copy in user space), else copied out of its buffer.
func readBlock(in plumbing.Source) (*block, error) {
	b := newBlock()
	if r, ok := in.(io.Reader); ok {
		n, err := r.Read(b.buf)
		b.n = n
		return b, err
	}
	p, err := in.Peek(1)
	b.n = copy(b.buf, p)
	in.Release(b.n)
	if err != nil && b.n < len(p) {
		err = nil // more to come before the error
	}
	return b, err
}

// aheadOfFastest is how much the fastest output may have queued before
// tee reads on.
const aheadOfFastest = 4 * blockSize

func teeBuiltin() *Builtin {
	b := &Builtin{
		Name:           "tee",
		Namesake:       true,
		WritesOperands: true,
		Synopsis:       "tee [-a] [-p] [--copy] [--buffer SIZE] [FILE]...",
		Summary: "Copy the input to stdout and to every FILE (a >(…) included). An output whose reader has gone is dropped " +
			"and the others go on (GNU tee -p); one that reads slowly never stalls the others: it queues up to SIZE " +
			"(default 64MiB) in memory, the rest in a temporary file.",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		appendTo := fs.Bool("a", false, "append to the FILEs, do not truncate them")
		fs.Bool("p", false, "accepted for GNU tee: a gone reader never stops tee")
		noSplice := fs.Bool("copy", false, "copy through user space even between pipes (for comparison)")
		buffer := fs.String("buffer", "64MiB", "how much an output queues in memory before spilling to a temporary file")
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		limit, err := parseBuffer(b.Name, *buffer)
		if err != nil {
			return nil, err
		}
		names := fs.Args()
		return func(in plumbing.Source, out plumbing.Sink, files Files) error {
			all := append([]string{"standard output"}, names...)
			fan := newFanOut(all, limit, func(i int) (plumbing.Sink, bool, error) {
				if i == 0 {
					// Closed as soon as it has every byte, not when the
					// last output has: its reader may be the one that
					// the others wait for (the join of a diamond).
					return out, true, nil
				}
				s, err := files.Create(all[i], *appendTo)
				return s, true, err
			})
			err := errNoPipes
			if src, ok := in.(*plumbing.FileSource); ok && !*noSplice {
				if fd, ok := src.PipeFD(); ok {
					err = teePipes(src, fd, fan)
				}
			}
			if err == errNoPipes {
				err = copyFan(in, fan, func(b *block) {
					for _, o := range fan.outs {
						o.q.push(b)
					}
				})
			}
			if err == errStopReading {
				err = nil // finish says why
			}
			err = errors.Join(err, fan.finish(err == nil))
			fan.report(files)
			return err
		}, nil
	}
	return b
}

// copyFan reads in to its end, handing each block to deal with fan's lock
// held, at the pace of the fastest output. It stops early when no output
// takes data any more; the error is the input's.
func copyFan(in plumbing.Source, fan *fanOut, deal func(*block)) error {
	plumbing.NoFlushBeforeWait(in) // the outputs are written by other goroutines
	for fan.waitRoom(aheadOfFastest) {
		b, err := readBlock(in)
		if b.n > 0 {
			fan.mu.Lock()
			deal(b)
			fan.mu.Unlock()
		}
		b.unref()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errStopReading
}

// errStopReading says the input was left unread because no output took
// data any more; finish says why.
var errStopReading = errors.New("no output left")

func parseBuffer(name, s string) (int, error) {
	n, err := ParseSize(s)
	if err != nil || n < blockSize || n > 1<<40 {
		return 0, usagef(name, "--buffer %q: want a size from 128KiB to 1TiB", s)
	}
	return int(n), nil
}

func splitBuiltin() *Builtin {
	b := &Builtin{
		Name:           "split",
		Namesake:       true,
		WritesOperands: true,
		Synopsis:       "split [-n K] [--bytes SIZE] [--buffer SIZE] OUTPUT...",
		Summary: "Deal the input round-robin to the OUTPUTs (>(…) ports, files, - for stdout): K whole lines " +
			"(default 1) to each in turn, or blocks of SIZE bytes. A slow output never stalls the others (see tee).",
	}
	b.Parse = func(args []string) (Run, error) { return b.ParseDir("", args) }
	b.ParseDir = func(dir string, args []string) (Run, error) {
		fs, parse := flags(b)
		lines := fs.Int("n", 1, "lines to each OUTPUT in turn")
		bytesFlag := fs.String("bytes", "", "deal blocks of SIZE bytes instead of lines")
		buffer := fs.String("buffer", "64MiB", "how much an output queues in memory before spilling to a temporary file")
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		limit, err := parseBuffer(b.Name, *buffer)
		if err != nil {
			return nil, err
		}
		if *lines < 1 {
			return nil, usagef(b.Name, "-n %d: want at least 1 line", *lines)
		}
		var size int64
		if *bytesFlag != "" {
			if size, err = ParseSize(*bytesFlag); err != nil || size < 1 {
				return nil, usagef(b.Name, "--bytes %q: want a size of at least 1 byte", *bytesFlag)
			}
		}
		names := fs.Args()
		if len(names) == 0 {
			return nil, usagef(b.Name, "want at least one OUTPUT")
		}
		for _, n := range names {
			// coreutils' split reads its FILE and writes PREFIXaa…: an
			// existing file among the arguments means that split, whose
			// input this one would overwrite.
			path := n
			if dir != "" && !strings.HasPrefix(n, "/") {
				path = strings.TrimSuffix(dir, "/") + "/" + n
			}
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(n, "/dev/") {
				return nil, usagef(b.Name, "%s: an existing file is coreutils split's input; the builtin writes its OUTPUTs", n)
			}
		}
		return func(in plumbing.Source, out plumbing.Sink, files Files) error {
			fan := newFanOut(names, limit, func(i int) (plumbing.Sink, bool, error) {
				if names[i] == "-" {
					return out, true, nil // closed when done, as tee's
				}
				s, err := files.Create(names[i], false)
				return s, true, err
			})
			d := &dealer{fan: fan, lines: *lines, size: size, filling: make([]*block, len(names))}
			err := copyFan(in, fan, d.deal)
			fan.mu.Lock()
			d.flushAll()
			fan.mu.Unlock()
			if err == errStopReading {
				err = nil // finish says why
			}
			err = errors.Join(err, fan.finish(err == nil))
			fan.report(files)
			return err
		}, nil
	}
	return b
}

// dealer cuts the input into units (K lines, or SIZE bytes) and deals
// them round-robin, gathering each output's units in a block of its own.
type dealer struct {
	fan     *fanOut
	lines   int
	size    int64
	turn    int      // the output the current unit goes to
	left    int64    // lines or bytes left of the current unit
	filling []*block // per output, the block being filled
}

// deal is called with the fan's lock held.
func (d *dealer) deal(b *block) {
	p := b.data()
	for len(p) > 0 {
		if d.left == 0 {
			d.left = int64(d.lines)
			if d.size > 0 {
				d.left = d.size
			}
		}
		n := len(p)
		if d.size > 0 {
			n = int(min(int64(n), d.left))
			d.left -= int64(n)
		} else {
			n = d.unitEnd(p)
		}
		d.put(d.turn, p[:n])
		p = p[n:]
		if d.left == 0 {
			d.turn = (d.turn + 1) % len(d.filling)
		}
	}
}

// unitEnd is how much of p the current unit of lines takes: up to its
// last newline, counting d.left down, or all of p. The newlines are
// counted a chunk at a time (bytes.Count), and looked for one by one only
// in the chunk where the unit ends: a byte-at-a-time scan was most of
// split's work.
func (d *dealer) unitEnd(p []byte) int {
	const chunk = 512
	for off := 0; off < len(p); {
		end := min(off+chunk, len(p))
		if c := int64(bytes.Count(p[off:end], newline)); c < d.left {
			d.left -= c
			off = end
			continue
		}
		for i := off; i < end; i++ {
			if p[i] == '\n' {
				if d.left--; d.left == 0 {
					return i + 1
				}
			}
		}
	}
	return len(p)
}

var newline = []byte{'\n'}

// put appends p to output i's block, queueing blocks as they fill.
func (d *dealer) put(i int, p []byte) {
	for len(p) > 0 {
		f := d.filling[i]
		if f == nil {
			f = newBlock()
			d.filling[i] = f
		}
		n := copy(f.buf[f.n:], p)
		f.n += n
		p = p[n:]
		if f.n == len(f.buf) {
			d.flush(i)
		}
	}
}

func (d *dealer) flush(i int) {
	if f := d.filling[i]; f != nil {
		if f.n > 0 {
			d.fan.outs[i].q.push(f)
		}
		f.unref()
		d.filling[i] = nil
	}
}

func (d *dealer) flushAll() {
	for i := range d.filling {
		d.flush(i)
	}
}
