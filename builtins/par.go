package builtins

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/plumbing"
)

// Par is what a par stage's words ask for: how many copies of which
// command, and how its input is dealt to them.
type Par struct {
	Jobs    int      // copies; 0 when -j was not given (the planner's default)
	Block   int      // bytes dealt to one copy at a time, at least (then on to the line's end)
	Ordered bool     // -k: the output in the input's order
	Command []string // the copies' words

	// BlockSet says --block was given; without it, -k over a regular
	// file sizes its blocks from the file (ParOrderedBlockFor).
	BlockSet bool

	// Header is how many lines at the input's start are a header: they
	// go to the output once, before the copies' (the dealer sends them
	// to the merge through port ParPort(Jobs+1)), and, with HeaderEach,
	// to every copy before its input (with -k, before every block).
	Header     int
	HeaderEach bool

	// Ranges says the copies (of -k, programs) read the input file
	// themselves: the dealer deals the places of the units in it
	// (frameRange), not their bytes. The planner sets it (--ranges).
	Ranges bool

	// Part insists that the input be a regular file, dealt in byte
	// ranges by splice(2) (copies that read pipes) or read(2) into the
	// copies' rings (builtins): the way par takes a file anyway, made a
	// requirement, so that a pipe is an error rather than slower.
	Part bool
}

// MaxParJobs is the most copies a par stage runs: each is one port of the
// dealer and one of the merger (descriptors 63 down to 10).
const MaxParJobs = parser.FirstPathFD - parser.LastPathFD + 1

// ParPort is the port of the dealer that feeds copy k (from 1), and of
// the merger that reads it: "/dev/fd/63" for the first copy, down.
func ParPort(k int) (fd int, name string) {
	fd = parser.FirstPathFD - k + 1
	return fd, fmt.Sprintf("/dev/fd/%d", fd)
}

// ParDefaultBlock is how much a copy is dealt at once when the input
// comes faster than the copies take it (less when a copy is idle).
const ParDefaultBlock = blockSize // "128KiB", par's --block default

// ParOrderedBlock is -k's --block default when the input's size is not
// known: a program copy runs once per block, so a block is large enough
// that a process start is little of its cost.
const ParOrderedBlock = 4 << 20

// ParOrderedBlockFor is -k's block for an input of size bytes dealt to
// jobs copies, when --block is not given: a quarter of each copy's share,
// so that the copies end close together, from 1MiB (a process start per
// block stays little of the cost) to 32MiB (measured: 1 GiB through grep
// -E at -j 2 took 1.87 s in 4MiB blocks, 1.33 s in 32MiB ones, 1.26 s in
// 64MiB ones, most of the difference the programs' starts).
func ParOrderedBlockFor(size int64, jobs int) int {
	return int(min(max(size/int64(4*jobs), 1<<20), 32<<20))
}

// ParseParArgs reads a par stage's words (without "par"). A bad one is a
// *UsageError.
func ParseParArgs(args []string) (*Par, error) {
	b := parBuiltin()
	p, _, err := parsePar(b, args)
	return p, err
}

func parsePar(b *Builtin, args []string) (*Par, Run, error) {
	fs, parse := flags(b)
	jobs := fs.Int("j", 0, fmt.Sprintf("run N copies (1 to %d; default: one per usable CPU)", MaxParJobs))
	ordered := fs.Bool("k", false, "keep the input's order in the output: each copy runs COMMAND once per block")
	block := fs.String("block", "128KiB", "deal at least SIZE bytes (whole lines) to a copy at a time, from 4KiB (with -k, see gpipe's README)")
	header := fs.Int("header", 0, "the first N lines are a header: out once, before the copies' output, not dealt")
	headerEach := fs.Bool("header-each", false, "with --header, give the header to every copy too (with -k, before every block)")
	part := fs.Bool("part", false, "the input must be a regular file, dealt in byte ranges (refused on a pipe)")
	ranges := fs.Bool("ranges", false, "(set by gpipe) with -k, the copies read the input file themselves: deal the units' places in it")
	if help, err := parse(args); help != nil || err != nil {
		return nil, help, err
	}
	if *jobs < 0 || *jobs > MaxParJobs || (*jobs == 0 && isSet(fs, "j")) {
		return nil, nil, usagef(b.Name, "-j %d: want 1 to %d copies", *jobs, MaxParJobs)
	}
	size, err := ParseSize(*block)
	if *ordered && !isSet(fs, "block") {
		size = ParOrderedBlock
	}
	if err != nil || size < 4<<10 || size > 1<<30 {
		return nil, nil, usagef(b.Name, "--block %q: want a size from 4KiB to 1GiB", *block)
	}
	if *header < 0 || *header > 1<<20 {
		return nil, nil, usagef(b.Name, "--header %d: want 0 to 1048576 lines", *header)
	}
	if *headerEach && *header == 0 {
		return nil, nil, usagef(b.Name, "--header-each: want --header N too")
	}
	if *header > 0 && *jobs == MaxParJobs {
		return nil, nil, usagef(b.Name, "-j %d with --header: want 1 to %d copies (the header takes a port)", *jobs, MaxParJobs-1)
	}
	if fs.NArg() == 0 {
		return nil, nil, usagef(b.Name, "want a COMMAND to run in copies")
	}
	return &Par{Jobs: *jobs, Block: int(size), Ordered: *ordered, Command: fs.Args(), BlockSet: isSet(fs, "block"),
		Header: *header, HeaderEach: *headerEach, Part: *part, Ranges: *ranges && *ordered}, nil, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parBuiltin is the dealer of a par stage. The planner expands "par -j N
// -- CMD" into this stage, N copies of CMD and a merge of their outputs;
// the dealer writes copy k's input to its port ParPort(k).
func parBuiltin() *Builtin {
	b := &Builtin{
		Name:     "par",
		Synopsis: "par [-j N] [-k] [--block SIZE] [--header N [--header-each]] [--part] [--] COMMAND [ARG]...",
		Summary: "Run N copies of COMMAND (default: one per usable CPU) and deal the input to them in whole-line " +
			"blocks, each to the copy with the least queued; their outputs are merged a whole line at a time, in " +
			"the order they come (-k: in the input's order, each copy running COMMAND once per block). gpipe shows the copies " +
			"as stages 3.1, 3.2, … of stage 3.",
	}
	b.Parse = func(args []string) (Run, error) {
		p, help, err := parsePar(b, args)
		if help != nil || err != nil {
			return help, err
		}
		if p.Jobs == 0 {
			return nil, usagef(b.Name, "-j: the planner gives every par stage its number of copies")
		}
		return func(in plumbing.Source, _ plumbing.Sink, files Files) error {
			if p.Part {
				src, ok := in.(*plumbing.FileSource)
				if ok {
					_, _, ok = src.RegularFD()
				}
				if !ok {
					return usagef(b.Name, "--part: the input is not a regular file: drop --part to deal it as it comes")
				}
			}
			var each []byte // the header every copy gets first
			if p.Header > 0 {
				header, err := sendHeader(in, p, files)
				if err != nil {
					return err
				}
				if p.HeaderEach {
					each = header
				}
			}
			names := make([]string, p.Jobs)
			for k := range names {
				_, names[k] = ParPort(k + 1)
			}
			open := func(i int) (plumbing.Sink, bool, error) {
				s, err := files.Create(names[i], false)
				return s, true, err
			}
			if src, ok := in.(*plumbing.FileSource); ok {
				if _, _, ok := src.RegularFD(); ok {
					// A file to pipes: splice(2), if every copy reads a pipe.
					sinks := make([]plumbing.Sink, len(names))
					for i := range names {
						var err error
						if sinks[i], _, err = open(i); err != nil {
							for _, s := range sinks[:i] {
								s.Close()
							}
							return fmt.Errorf("%s: %w", names[i], err)
						}
					}
					block := p.Block
					if _, _, ok := src.RegularFD(); ok && p.Ordered && !p.BlockSet {
						if fi, err := src.Stat(); err == nil {
							block = ParOrderedBlockFor(fi.Size(), p.Jobs)
						}
					}
					if handled, err := spliceDeal(in, sinks, names, block, p.Ordered, p.Ranges, each, files); handled {
						return copiesGone(err)
					}
					open = func(i int) (plumbing.Sink, bool, error) { return sinks[i], true, nil }
				}
			}
			// No spilling: a copy is dealt to only while it has the least
			// queued, so no queue grows past a few blocks. In order, each
			// copy's turn comes whatever it holds: the input waits for a
			// copy with two blocks queued (and spills past one that has
			// taken nothing for a while, as tee's outputs do).
			limit := 1 << 40
			if p.Ordered {
				limit = 2 * p.Block
			}
			fan := newFanOut(names, limit, open)
			fan.counts, fan.direct = true, true
			d := &parDealer{fan: fan, block: p.Block, target: -1, last: -1, ordered: p.Ordered, each: each}
			if each != nil && !p.Ordered {
				fan.mu.Lock()
				for _, o := range fan.outs {
					pushBytes(o.q, each)
				}
				fan.mu.Unlock()
			}
			err := d.run(in)
			fan.mu.Lock()
			d.flush()
			fan.mu.Unlock()
			if err == errStopReading {
				err = nil // finish says why
			}
			err = errors.Join(err, fan.finish(err == nil))
			fan.report(files)
			return copiesGone(err)
		}, nil
	}
	return b
}

// copiesGone is the dealer's outcome err, but for every copy gone (a
// broken pipe), which is no failure of the dealer's: its copies' statuses
// say why they went (141 when the output's reader went first, as in "par
// -- cat | head -n 1"), and the dealer, whose own stdout is gpipe's but
// who writes nothing there, must not end as a writer on a broken pipe
// would, which would make gpipe's status 141.
func copiesGone(err error) error {
	if plumbing.IsBrokenPipe(err) {
		return nil
	}
	return err
}

// pushBytes queues a copy of p. Call with the lock held.
func pushBytes(q *queue, p []byte) {
	for len(p) > 0 {
		b := newBlock()
		b.n = copy(b.buf, p)
		p = p[b.n:]
		q.push(b)
		b.unref()
	}
}

// sendHeader takes the input's first p.Header lines (all of it when it
// has fewer), sends them to the merge through the header port, and
// returns them. From a regular file it reads them with pread(2), leaving
// nothing read ahead, so that the rest may still go by splice(2).
func sendHeader(in plumbing.Source, p *Par, files Files) ([]byte, error) {
	var header []byte
	lines := p.Header
	src, isFile := in.(*plumbing.FileSource)
	var fd int
	var off int64
	if isFile {
		fd, off, isFile = src.RegularFD()
	}
	if isFile {
		buf := make([]byte, 64<<10)
		for at := off; lines > 0; {
			n, err := unix.Pread(fd, buf, at)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
			k := takeLines(buf[:n], &lines)
			header = append(header, buf[:k]...)
			at += int64(k)
		}
		if err := src.SeekTo(off + int64(len(header))); err != nil {
			return nil, err
		}
	} else {
		for lines > 0 {
			b, err := in.Peek(1)
			k := takeLines(b, &lines)
			header = append(header, b[:k]...)
			in.Release(k)
			if len(b) == 0 || (err != nil && k == len(b)) {
				if err != nil && err != io.EOF {
					return nil, err
				}
				break
			}
		}
	}
	_, name := ParPort(p.Jobs + 1)
	out, err := files.Create(name, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	err = plumbing.Write(out, header)
	return header, plumbing.CloseAfter(out, err)
}

// takeLines is how much of p the next *lines lines take, counting them
// down: up to the last newline it needs, or all of p.
func takeLines(p []byte, lines *int) int {
	taken := 0
	for *lines > 0 {
		i := bytes.IndexByte(p[taken:], '\n')
		if i < 0 {
			return len(p)
		}
		taken += i + 1
		*lines--
	}
	return taken
}

// parDealer deals the input to a par stage's copies in units of whole
// lines: at least block bytes when every copy has data queued, or what
// whole lines have come so far when a copy has none (it may be waiting,
// and a trickle of input must not wait for a block to fill). A unit goes
// to the copy with the least queued, so a slow copy is dealt less; a line
// longer than a unit makes the unit longer.
type parDealer struct {
	fan    *fanOut
	block  int
	fill   *block // the current unit's data not yet queued
	sent   int    // bytes of the current unit already queued
	target int    // the output taking the current unit; -1 before it has one
	last   int    // the output that took the previous unit

	// ordered deals unit i, framed, to output i mod N (par -k): a
	// unit's blocks are held (unit) until its length is known.
	ordered bool
	turn    int
	unit    []*block
	start   int    // where in fill the current unit begins (ordered)
	each    []byte // the header every unit begins with (ordered, --header-each)
}

// run reads the input to its end straight into the unit being filled
// (one copy, from the pipe or the ring), dealing as it goes, at the pace
// of the copy with the least queued. It stops early when no copy takes
// data any more; the error is the input's.
func (d *parDealer) run(in plumbing.Source) error {
	plumbing.NoFlushBeforeWait(in) // the outputs are written by other goroutines
	r, isReader := in.(io.Reader)
	for d.fan.waitRoom(aheadOfFastest) {
		if d.target >= 0 {
			// A unit in progress (a line longer than a block) can only
			// go on to its copy: wait for that one, not the fastest.
			d.fan.waitFor(d.target, aheadOfFastest)
		}
		if d.fill == nil {
			d.fill = newBlock()
		}
		var n int
		var err error
		if isReader {
			n, err = r.Read(d.fill.buf[d.fill.n:])
		} else {
			var p []byte
			p, err = in.Peek(1)
			n = copy(d.fill.buf[d.fill.n:], p)
			in.Release(n)
			if err != nil && n < len(p) {
				err = nil // more to come before the error
			}
		}
		d.fill.n += n
		d.fan.mu.Lock()
		d.dealt()
		d.fan.mu.Unlock()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errStopReading
}

// dealt deals what the last read added to the unit being filled. Call
// with the fan's lock held.
func (d *parDealer) dealt() {
	if d.ordered {
		d.dealtOrdered()
		return
	}
	if d.fill.n == len(d.fill.buf) {
		if d.sent+d.fill.n >= d.block && d.endUnit() {
			return
		}
		// The unit goes on in the next block: a line runs past this one,
		// or the unit is not full yet.
		d.queue(d.fill)
		d.fill = nil
		return
	}
	if d.sent+d.fill.n >= d.block || d.someIdle() {
		d.endUnit()
	}
}

// dealtOrdered cuts the ordered deal's units at the first line end at or
// past block bytes (a copy runs its command once per unit, so a unit is
// about the size asked for), framing each as it ends. The bytes of a unit
// are copied out of the block being filled, which starts over when full:
// each byte is copied once, whatever the unit's size. Call with the fan's
// lock held.
func (d *parDealer) dealtOrdered() {
	for {
		data := d.fill.buf[d.start:d.fill.n]
		from := max(d.block-d.sent-1, 0) // where the unit may end at the earliest
		if from >= len(data) {
			break
		}
		i := bytes.IndexByte(data[from:], '\n')
		if i < 0 {
			break
		}
		end := from + i + 1
		d.hold(data[:end])
		d.start += end
		d.frame()
		d.sent = 0
	}
	if d.fill.n == len(d.fill.buf) {
		// What is left goes on in the next block.
		if d.start == 0 {
			d.sent += d.fill.n
			d.unit = append(d.unit, d.fill)
		} else {
			d.hold(d.fill.buf[d.start:d.fill.n])
			d.fill.unref()
		}
		d.fill, d.start = nil, 0
	}
}

// hold copies p into the unit being framed.
func (d *parDealer) hold(p []byte) {
	d.sent += len(p)
	for len(p) > 0 {
		var b *block
		if k := len(d.unit); k > 0 && d.unit[k-1].n < len(d.unit[k-1].buf) && d.unit[k-1].refs.Load() == 1 {
			b = d.unit[k-1]
		} else {
			b = newBlock()
			d.unit = append(d.unit, b)
		}
		n := copy(b.buf[b.n:], p)
		b.n += n
		p = p[n:]
	}
}

// endUnit queues the current unit up to its last whole line and starts
// the next with the rest; false when the data has no newline (the unit
// must go on to the line's end).
func (d *parDealer) endUnit() bool {
	data := d.fill.data()
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return false
	}
	rest := newBlock()
	rest.n = copy(rest.buf, data[i+1:])
	d.fill.n = i + 1
	d.queue(d.fill)
	d.fill = rest
	d.frame()
	d.last, d.target, d.sent = d.target, -1, 0
	return true
}

// frame queues the unit held for an ordered deal, its length first, to
// the output whose turn it is. Call with the fan's lock held.
func (d *parDealer) frame() {
	if !d.ordered || len(d.unit) == 0 {
		return
	}
	n := len(d.each)
	for _, b := range d.unit {
		n += b.n
	}
	head := newBlock()
	h := chunkHead(n, true)
	head.n = copy(head.buf, h[:])
	q := d.fan.outs[d.turn%len(d.fan.outs)].q
	d.turn++
	q.push(head)
	head.unref()
	pushBytes(q, d.each)
	for _, b := range d.unit {
		q.push(b)
		b.unref()
	}
	d.unit = d.unit[:0]
}

// queue hands b (which it takes over) to the current unit's output, or
// holds it in the unit to frame (ordered).
func (d *parDealer) queue(b *block) {
	if d.ordered {
		d.sent += b.n
		if b.n > 0 {
			d.unit = append(d.unit, b)
		} else {
			b.unref()
		}
		return
	}
	if d.target < 0 {
		d.target = d.leastQueued()
	}
	d.sent += b.n
	if d.target >= 0 && b.n > 0 {
		d.fan.outs[d.target].q.push(b)
	}
	b.unref()
}

// leastQueued is the live output with the least queued, the one after
// the last unit's first among equals; -1 when none is live.
func (d *parDealer) leastQueued() int {
	best, least := -1, int64(-1)
	n := len(d.fan.outs)
	for k := 1; k <= n; k++ {
		i := (d.last + k + n) % n
		q := d.fan.outs[i].q
		if q.dropped {
			continue
		}
		p := q.pending()
		if q.inflight {
			p += blockSize // being written, at most a block
		}
		if least < 0 || p < least {
			best, least = i, p
		}
	}
	return best
}

// waitFor waits until output i has less than ahead queued, or has gone.
func (f *fanOut) waitFor(i int, ahead int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for q := f.outs[i].q; !q.dropped && q.pending() >= ahead; {
		f.cond.Wait()
	}
}

// someIdle reports whether a live output has written out all it was
// given: its copy may be waiting for input.
func (d *parDealer) someIdle() bool {
	for _, o := range d.fan.outs {
		if !o.q.dropped && o.q.quiet() {
			return true
		}
	}
	return false
}

// flush queues what is left at the end of the input: a last line without
// a newline included.
func (d *parDealer) flush() {
	if d.fill != nil && d.ordered {
		d.hold(d.fill.buf[d.start:d.fill.n])
		d.fill.unref()
		d.fill, d.start = nil, 0
	}
	if d.fill != nil {
		d.queue(d.fill)
		d.fill = nil
	}
	d.frame()
}
