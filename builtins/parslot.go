package builtins

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/gpipe/gpipe/plumbing"
)

// The ordered par (-k) keeps the input's order with copies that each run
// their command once per block: the dealer sends block i, framed, to copy
// i mod N; the copy runs the command over it and sends back its output,
// framed; the merge takes copy i mod N's next frame for block i. Each copy
// takes its blocks in order, so the frames come back in order without a
// reorder buffer.
//
// A frame is one or more chunks: an 8-byte little-endian header, the
// chunk's length with frameLast set on the frame's last chunk, and that
// many bytes. A copy that runs a program passes its output on in chunks
// as it comes, without holding it.

// frameLast marks the last chunk of a frame in a chunk's header.
const frameLast = 1 << 63

// frameRange marks a chunk that holds no bytes of the block but where
// they are in the input file, which the copy reads itself (par -k over
// "< FILE" with program copies: par-slot --file): its rangeSize bytes are
// the offset, the length, and the file's device and inode, little-endian.
const frameRange = 1 << 62

const rangeSize = 32

// chunkHead is the header of a chunk of n bytes, the frame's last if last.
func chunkHead(n int, last bool) [8]byte {
	h := uint64(n)
	if last {
		h |= frameLast
	}
	var head [8]byte
	binary.LittleEndian.PutUint64(head[:], h)
	return head
}

// writeFrame writes p as one frame of one chunk.
func writeFrame(out plumbing.Sink, p []byte) error {
	head := chunkHead(len(p), true)
	if err := plumbing.Write(out, head[:]); err != nil {
		return err
	}
	return plumbing.Write(out, p)
}

// errFrame says a frame was cut short: its writer ended in the middle.
var errFrame = errors.New("a block cut short")

// readChunkHead reads a chunk's header: its length, and whether it is its
// frame's last; io.EOF when in ends before one.
func readChunkHead(in plumbing.Source) (n int64, last bool, err error) {
	p, err := in.Peek(8)
	if len(p) < 8 {
		if err == nil || (err == io.EOF && len(p) > 0) {
			err = errFrame
		}
		return 0, false, err
	}
	h := binary.LittleEndian.Uint64(p[:8])
	in.Release(8)
	if h&frameRange != 0 {
		return 0, false, errors.New("a block by its place in a file, for a copy that runs a program")
	}
	return int64(h &^ frameLast), h&frameLast != 0, nil
}

// copyFrame hands the bytes of in's next frame to f, a piece at a time;
// io.EOF when in ends before one.
func copyFrame(in plumbing.Source, f func([]byte) error) error {
	for first := true; ; first = false {
		n, last, err := readChunkHead(in)
		if err == io.EOF && !first {
			err = errFrame
		}
		if err != nil {
			return err
		}
		if err := copyChunkBody(in, n, f); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// copyChunkBody hands the next n bytes of in to f, a piece at a time.
func copyChunkBody(in plumbing.Source, n int64, f func([]byte) error) error {
	for n > 0 {
		p, err := in.Peek(1)
		if len(p) > 0 {
			k := int(min(int64(len(p)), n))
			if ferr := f(p[:k]); ferr != nil {
				return ferr
			}
			in.Release(k)
			n -= int64(k)
			continue
		}
		if err == io.EOF || err == nil {
			return errFrame
		}
		return err
	}
	return nil
}

// parSlotBuiltin is a copy of an ordered par stage: it runs its command
// once per framed block of its input (a builtin over the block in memory,
// or a program), and writes each block's output as one frame. It is
// gpipe's own (the planner makes it); it is not listed.
func parSlotBuiltin() *Builtin {
	b := &Builtin{
		Name:     "par-slot",
		Hidden:   true,
		Synopsis: "par-slot [--program PATH] -- COMMAND [ARG]...",
		Summary:  "A copy of an ordered par stage (par -k): COMMAND once per framed block of the input, each block's output framed.",
	}
	b.Parse = func(args []string) (Run, error) { return b.ParseDir("", args) }
	b.ParseDir = func(dir string, args []string) (Run, error) {
		fs, parse := flags(b)
		program := fs.String("program", "", "run the program PATH (its argv COMMAND ARG...), not a builtin")
		file := fs.String("file", "", "the dealer's input FILE, which blocks may be given by their place in")
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		words := fs.Args()
		if len(words) == 0 {
			return nil, usagef(b.Name, "want a COMMAND")
		}
		var once func(block []byte, out io.Writer) error
		if *program != "" {
			path := *program
			once = func(block []byte, out io.Writer) error {
				cmd := exec.Command(path)
				cmd.Args = words
				cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(block), out, os.Stderr
				return cmd.Run()
			}
		} else {
			inner := Default()[words[0]]
			if inner == nil {
				return nil, usagef(b.Name, "%s: no such builtin", words[0])
			}
			if _, err := inner.ParseIn(dir, words[1:]); err != nil {
				return nil, err
			}
			once = func(block []byte, out io.Writer) error {
				// A Run is for one input (head counts its lines down):
				// one per block.
				run, err := inner.ParseIn(dir, words[1:])
				if err != nil {
					return err
				}
				src := plumbing.NewReaderSource(bytes.NewReader(block))
				sink := plumbing.NewWriterSink(out)
				err = run(src, sink, OSFiles{})
				return plumbing.CloseAfter(sink, err)
			}
		}
		return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
			if *program != "" {
				if handled, err := spliceSlot(in, out, *program, words, *file); handled {
					return err
				}
			} else {
				return builtinSlot(in, out, Default()[words[0]], dir, words[1:])
			}
			var block, output bytes.Buffer
			var failed error
			for {
				block.Reset()
				err := copyFrame(in, func(p []byte) error { block.Write(p); return nil })
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				output.Reset()
				if err := once(block.Bytes(), &output); err != nil && failed == nil {
					// The first failure is the copy's status; the other
					// blocks still run, as GNU parallel runs every job.
					failed = slotFailure(err)
				}
				if err := writeFrame(out, output.Bytes()); err != nil {
					return err
				}
				if err := out.Flush(); err != nil {
					return err
				}
			}
			return failed
		}, nil
	}
	return b
}

// builtinSlot runs the builtin b (with args) once per frame of in,
// straight over the frame's bytes in the input (a frameSource: no copy of
// the block), its output framed in chunks as it comes (a chunkSink).
func builtinSlot(in plumbing.Source, out plumbing.Sink, b *Builtin, dir string, args []string) error {
	var failed error
	for {
		n, last, err := readChunkHead(in)
		if err == io.EOF {
			return failed
		}
		if err != nil {
			return err
		}
		if !last {
			return errors.New("a block in pieces: the dealer sends each whole")
		}
		// A Run is for one input (head counts its lines down): one per
		// block.
		run, err := b.ParseIn(dir, args)
		if err != nil {
			return err
		}
		src := &frameSource{in: in, n: n}
		sink := &chunkSink{out: out, buf: make([]byte, 0, blockSize)}
		rerr := run(src, sink, OSFiles{})
		if err := src.drain(); err != nil {
			return err
		}
		if err := sink.end(); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
		if rerr != nil && failed == nil && !plumbing.IsBrokenPipe(rerr) {
			// As for a program: the first failure is the copy's.
			failed = rerr
		}
	}
}

// frameSource is the bytes of one frame of in, n of them left, as a
// Source of their own: a builtin copy reads its block where it lies.
type frameSource struct {
	in plumbing.Source
	n  int64
}

func (f *frameSource) Peek(atLeast int) ([]byte, error) {
	if f.n == 0 {
		return nil, io.EOF
	}
	p, err := f.in.Peek(int(min(int64(atLeast), f.n)))
	if int64(len(p)) >= f.n {
		return p[:f.n], io.EOF
	}
	if err == io.EOF {
		err = errFrame
	}
	return p, err
}

func (f *frameSource) Release(n int) { f.in.Release(n); f.n -= int64(n) }

// Close stops nothing: the next frame follows.
func (f *frameSource) Close() error { return nil }

func (f *frameSource) MaxPeek() int { return f.in.MaxPeek() }

// drain reads what the builtin left of the frame (head stops early).
func (f *frameSource) drain() error {
	for f.n > 0 {
		p, err := f.Peek(1)
		if len(p) > 0 {
			f.Release(len(p))
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// chunkSink frames what a builtin copy writes: a chunk to out each time
// its buffer fills or it is flushed, and the frame's last (end) after it.
type chunkSink struct {
	out  plumbing.Sink
	buf  []byte
	done bool
}

func (c *chunkSink) Reserve(atLeast int) ([]byte, error) {
	if cap(c.buf)-len(c.buf) < max(atLeast, 1) {
		if err := c.emit(false); err != nil {
			return nil, err
		}
	}
	return c.buf[len(c.buf):cap(c.buf)], nil
}

func (c *chunkSink) Commit(n int) { c.buf = c.buf[:len(c.buf)+n] }

func (c *chunkSink) Flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	return c.emit(false)
}

// Close ends the builtin's output; the frame ends with end.
func (c *chunkSink) Close() error { return nil }

func (c *chunkSink) MaxReserve() int { return cap(c.buf) }

// end writes the frame's last chunk.
func (c *chunkSink) end() error {
	if c.done {
		return nil
	}
	c.done = true
	return c.emit(true)
}

func (c *chunkSink) emit(last bool) error {
	head := chunkHead(len(c.buf), last)
	if err := plumbing.Write(c.out, head[:]); err != nil {
		return err
	}
	err := plumbing.Write(c.out, c.buf)
	c.buf = c.buf[:0]
	return err
}

// slotFailure is what a failed run of a copy's command makes of the copy:
// the program's status (an ExitError), or the error.
func slotFailure(err error) error {
	if code, ok := SlotExit(err); ok {
		return &ExitError{Code: code}
	}
	return err
}

// SlotExit is the exit status a copy of an ordered par stage ends with
// when a run of its command failed with err: the program's own status, or
// 128+N for a death by signal N; ok false for any other error.
func SlotExit(err error) (code int, ok bool) {
	var state *os.ProcessState
	var ee *exec.ExitError
	var es *exitState
	switch {
	case errors.As(err, &ee):
		state = ee.ProcessState
	case errors.As(err, &es):
		state = es.ProcessState
	default:
		return 0, false
	}
	ws, isWS := state.Sys().(syscall.WaitStatus)
	switch {
	case isWS && ws.Signaled():
		return 128 + int(ws.Signal()), true
	case isWS:
		return ws.ExitStatus(), true
	}
	return 0, false
}

// orderedMerge writes the frames of the inputs in turn, one frame from
// each: block i's output from input i mod N. It ends at the first input
// that has no frame for its turn, and fails if another one still has.
func orderedMerge(srcs []plumbing.Source, out plumbing.Sink) error {
	for i := 0; ; i++ {
		src := srcs[i%len(srcs)]
		if src == nil {
			return fmt.Errorf("input %d: cannot be read", i%len(srcs)+1)
		}
		var werr error
		err := copyFrame(src, func(p []byte) error {
			werr = plumbing.Write(out, p)
			return werr
		})
		switch {
		case err == io.EOF:
			return orderedEnd(srcs, i)
		case werr != nil:
			return werr
		case err != nil:
			return fmt.Errorf("input %d: %w", i%len(srcs)+1, err)
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// orderedEnd checks that no input has a frame left after the last block,
// number last: a copy that ended early lost the blocks after it.
func orderedEnd(srcs []plumbing.Source, last int) error {
	var more []string
	for k, src := range srcs {
		if src == nil {
			continue
		}
		if p, err := src.Peek(1); len(p) > 0 || (err != nil && err != io.EOF) {
			more = append(more, fmt.Sprint(k+1))
		}
	}
	if len(more) > 0 {
		return fmt.Errorf("input %d ended at block %d while input %s had more: output lost", last%len(srcs)+1, last+1, strings.Join(more, ", "))
	}
	return nil
}
