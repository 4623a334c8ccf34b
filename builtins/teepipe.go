package builtins

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// errNoPipes says tee's input is no pipe: it copies through user space.
var errNoPipes = errors.New("no pipe to tee from")

// teeChunk bounds the bytes one round of teePipes moves.
const teeChunk = 1 << 20

// teePipes is tee between pipes without copying through user space: each
// round duplicates what the input pipe holds into every output pipe that
// has taken all it was given before (tee(2), which moves page references),
// then consumes it (splice(2) into /dev/null). An output that is not a
// pipe, or whose pipe is full, or that is still behind, gets the bytes it
// misses copied into its queue (one read of the input, which consumes it),
// so that a slow output still stalls no other. It returns errNoPipes,
// having done nothing, when no output is a pipe yet.
func teePipes(in *plumbing.FileSource, inFD int, fan *fanOut) error {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return errNoPipes
	}
	defer null.Close()
	nullFD := int(null.Fd())
	for fan.waitRoom(aheadOfFastest) {
		if err := in.WaitInput(inFD); err != nil {
			return err
		}
		n, err := unix.IoctlGetInt(inFD, unix.TIOCINQ) // FIONREAD
		if err != nil {
			return err
		}
		if n == 0 {
			return nil // readable with nothing in it: no writer left
		}
		if err := teeRound(inFD, nullFD, min(n, teeChunk), fan); err != nil {
			return err
		}
	}
	return errStopReading
}

// teeRound moves the first n bytes of the input (which holds at least n)
// to every output, with the fan's lock held throughout: no writer
// goroutine touches an output it finds quiet.
func teeRound(inFD, nullFD, n int, fan *fanOut) error {
	fan.mu.Lock()
	defer fan.mu.Unlock()
	has := make([]int, len(fan.outs)) // bytes of this round each output has
	copyFrom := n                     // the first byte some output needs copied
	for i, o := range fan.outs {
		if o.q.dropped {
			has[i] = n
			continue
		}
		fd, direct := -1, false
		if s, ok := o.sink.(*plumbing.FileSink); ok && o.q.quiet() {
			fd, direct = s.PipeFD()
		}
		if direct {
			m, err := unix.Tee(inFD, fd, n, unix.SPLICE_F_NONBLOCK)
			switch {
			case err == nil:
				has[i] = int(m)
			case err == syscall.EAGAIN:
			case plumbing.IsBrokenPipe(err):
				o.gone = true
				o.q.drop()
				has[i] = n
				continue
			default:
				o.err = fmt.Errorf("%s: %w", o.name, err)
				o.q.drop()
				has[i] = n
				continue
			}
		}
		copyFrom = min(copyFrom, has[i])
	}
	// What every output has is consumed without a copy; the rest is read.
	if err := spliceAll(inFD, nullFD, copyFrom); err != nil {
		return err
	}
	if copyFrom == n {
		return nil
	}
	var blocks []*block
	defer func() {
		for _, b := range blocks {
			b.unref()
		}
	}()
	for at := copyFrom; at < n; {
		b := newBlock()
		blocks = append(blocks, b)
		want := min(len(b.buf), n-at)
		for b.n < want {
			k, err := unix.Read(inFD, b.buf[b.n:want])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || k == 0 {
				return fmt.Errorf("read the input pipe: %d of %d bytes: %v", b.n, want, err)
			}
			b.n += k
		}
		at += b.n
	}
	for i, o := range fan.outs {
		if has[i] >= n || o.q.dropped {
			continue
		}
		at := copyFrom
		for _, b := range blocks {
			switch end := at + b.n; {
			case end <= has[i]:
			case at >= has[i]:
				o.q.push(b)
			default:
				tail := newBlock()
				tail.n = copy(tail.buf, b.data()[has[i]-at:])
				o.q.push(tail)
				tail.unref()
			}
			at += b.n
		}
	}
	return nil
}

// spliceAll consumes n bytes of the input pipe, which holds them, into
// /dev/null.
func spliceAll(inFD, nullFD, n int) error {
	for n > 0 {
		m, err := unix.Splice(inFD, nil, nullFD, nil, n, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return fmt.Errorf("consume the input pipe: %v", err)
		}
		n -= int(m)
	}
	return nil
}
