package builtins

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// errNoPipes says tee's input is no pipe: it copies through user space.
var errNoPipes = errors.New("no pipe to tee from")

// teeChunk bounds the bytes one round of teePipes moves.
const teeChunk = 1 << 20

// teePipes is tee between pipes without copying through user space: each
// round duplicates what the input pipe holds into every output pipe (tee(2),
// which moves page references), then consumes it (splice(2) into
// /dev/null). See teeRound for an output that is full, or no pipe, or
// behind. It returns errNoPipes, having done nothing, when no output is a
// pipe yet.
func teePipes(in *plumbing.FileSource, inFD int, fan *fanOut) error {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return errNoPipes
	}
	defer null.Close()
	nullFD := int(null.Fd())
	for fan.waitRoom(aheadOfFastest) {
		if err := catchUp(in, fan); err != nil {
			return err
		}
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
		if err := teeRound(in, inFD, nullFD, min(n, teeChunk, fan.roundRoom()), fan); err != nil {
			return err
		}
	}
	return errStopReading
}

// teeRound moves the first n bytes of the input (which holds at least n)
// to every output, with the fan's lock held but while it waits for room:
// no writer goroutine touches an output it finds quiet, and this one is
// the only producer.
//
// The outputs that are quiet pipes take the bytes by tee(2), in step: the
// input is consumed as far as every one of them has taken, and one that is
// full is waited for, as GNU tee waits, while the others still have bytes
// to read. It is given up on, and gets the rest of the round copied into
// its queue, when it holds up another (one that has more of the round has
// drained its pipe to an eighth: its reader is about to wait), or when
// nothing has moved for stallAfter (the readers wait for each other). An
// output that is no pipe, or behind (its queue holds data), always gets
// copies; the round then reads the input once (which consumes it), and a
// pipe that cannot take all of it at once gets the rest copied too. An
// output that has fallen back on its queue takes tee(2) again once its
// queue is empty.
func teeRound(in *plumbing.FileSource, inFD, nullFD, n int, fan *fanOut) error {
	fan.mu.Lock()
	defer fan.mu.Unlock()
	has := make([]int, len(fan.outs)) // bytes of this round each output has
	fds := make([]int, len(fan.outs)) // a direct output's pipe, else -1
	copying := false                  // some output needs a copy whatever happens
	// What the round consumes goes to /dev/null, or to an output that is
	// a file (tee's "> out" or "> /dev/null"), by splice(2): it then
	// takes its bytes without a copy too.
	consumer, consumeFD := -1, nullFD
	for i, o := range fan.outs {
		fds[i] = -1
		if o.q.dropped {
			has[i] = n
			continue
		}
		if o.q.quiet() {
			if fd, ok := pipeSink(o.sink); ok {
				fds[i] = fd
				continue
			}
			if fd, ok := spliceSink(o.sink); ok && consumer < 0 {
				consumer, consumeFD = i, fd
				continue
			}
		}
		copying = true
	}
	consume := func(to, from int) error {
		if err := spliceAll(inFD, consumeFD, to-from); err != nil {
			if consumer >= 0 {
				o := fan.outs[consumer]
				return fmt.Errorf("%s: %w", o.name, err)
			}
			return err
		}
		return nil
	}
	consumed := 0
	lastMove := time.Now()
	for {
		low := n // the least any direct output has
		for i, fd := range fds {
			if fd >= 0 {
				low = min(low, has[i])
			}
		}
		if low == n {
			break
		}
		if !copying {
			if err := consume(low, consumed); err != nil {
				return err
			}
			consumed = low
		}
		full, moved := teeStep(inFD, n, low, has, fds, fan)
		if copying {
			break // one pass: the read below serves the rest
		}
		if moved {
			lastMove = time.Now()
			continue
		}
		if len(full) == 0 {
			continue // the outputs behind were dropped
		}
		if heldUp(fds, has, low) || time.Since(lastMove) >= stallAfter {
			break
		}
		fan.mu.Unlock()
		_, err := in.WaitWritable(full, lagCheck)
		fan.mu.Lock()
		if err != nil {
			return err
		}
	}
	copyFrom := n // the first byte some output needs copied
	for i, o := range fan.outs {
		if !o.q.dropped && i != consumer {
			copyFrom = min(copyFrom, has[i])
		}
	}
	if copyFrom > consumed {
		if err := consume(copyFrom, consumed); err != nil {
			return err
		}
	}
	if consumer >= 0 {
		has[consumer] = copyFrom
	}
	if copyFrom >= n {
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
		if i == consumer {
			// A file takes the rest at once, from here (its writer is
			// idle): it never lags, and stays the round's consumer.
			for _, b := range blocks {
				if err := plumbing.Write(o.sink, b.data()); err != nil {
					o.err = fmt.Errorf("%s: %w", o.name, err)
					o.q.drop()
					break
				}
			}
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

// teeStep duplicates the input from its head, where low bytes of the
// round are consumed, into every direct output that has exactly low (the
// others are ahead), without blocking. It returns the outputs that were
// full, and whether any took bytes; an output whose reader has gone, or
// that fails, is dropped.
func teeStep(inFD, n, low int, has, fds []int, fan *fanOut) (full []int, moved bool) {
	for i, o := range fan.outs {
		if fds[i] < 0 || has[i] != low {
			continue
		}
		m, err := unix.Tee(inFD, fds[i], n-low, unix.SPLICE_F_NONBLOCK)
		switch {
		case err == nil && m > 0:
			has[i] += int(m)
			moved = true
		case err == nil || err == syscall.EAGAIN || err == syscall.EINTR:
			full = append(full, fds[i])
		case plumbing.IsBrokenPipe(err):
			o.gone = true
			o.q.drop()
			has[i], fds[i] = n, -1
		default:
			o.err = fmt.Errorf("%s: %w", o.name, err)
			o.q.drop()
			has[i], fds[i] = n, -1
		}
	}
	return full, moved
}

// heldUp reports whether a direct output that is ahead of low has drained
// its pipe to an eighth: its reader will soon wait for the outputs at low.
func heldUp(fds, has []int, low int) bool {
	var ahead []int
	for i, fd := range fds {
		if fd >= 0 && has[i] > low {
			ahead = append(ahead, fd)
		}
	}
	return below(ahead, 8)
}

// spliceSink returns the file a sink writes, when bytes can be spliced
// into it (see plumbing.FileSink.SpliceFD). Call it only while nothing
// writes the sink.
func spliceSink(s plumbing.Sink) (int, bool) {
	if fs, ok := s.(*plumbing.FileSink); ok {
		return fs.SpliceFD()
	}
	return -1, false
}

// pipeSink returns the pipe a sink writes, for tee(2). Call it only while
// nothing writes the sink: when it is opened, or while its queue is quiet.
func pipeSink(s plumbing.Sink) (int, bool) {
	if fs, ok := s.(*plumbing.FileSink); ok {
		return fs.PipeFD()
	}
	return -1, false
}

// catchUp lets the pipe outputs that fell back on their queues (full for a
// moment while another drained, or given copies before they were open)
// empty them before the input is read on, so that they take tee(2) again
// rather than copies for ever after. With readers of one speed, the one
// behind can only catch up while the others wait, and a short wait is
// cheaper than copying the rest of the stream. It waits only while no
// other output starves (see starving), and while the outputs behind still
// take data: one that took nothing for catchUpIdle is slow or does not
// read, and is left behind, queueing as before.
func catchUp(in *plumbing.FileSource, fan *fanOut) error {
	for {
		lagging := false
		fan.mu.Lock()
		for _, o := range fan.outs {
			if o.pipe && !o.q.dropped && !o.q.quiet() && time.Since(o.q.taken) < catchUpIdle {
				lagging = true
			}
		}
		starving := fan.starving()
		fan.mu.Unlock()
		if !lagging || starving {
			return nil
		}
		if _, err := in.WaitWritable(nil, lagCheck); err != nil {
			return err
		}
	}
}

// catchUpIdle is how long an output behind may take nothing before
// catchUp stops waiting for it.
const catchUpIdle = 20 * time.Millisecond

// starving reports whether an output has written out all it was given
// and its reader will soon wait for more: a pipe with less than an eighth
// of it left to read, or a ring, which gpipe cannot look into. A file
// takes what comes when it comes. Call with the lock held.
func (f *fanOut) starving() bool {
	for _, o := range f.outs {
		if o.q.dropped || !o.q.quiet() || o.file {
			continue
		}
		fd, isPipe := pipeSink(o.sink)
		if !isPipe || below([]int{fd}, 8) {
			return true
		}
	}
	return false
}

// below reports whether one of the pipes holds less than 1/frac of its
// capacity: its reader will soon wait for more.
func below(fds []int, frac int) bool {
	for _, fd := range fds {
		queued, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
		if err != nil {
			return true
		}
		size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
		if err != nil || queued < size/frac {
			return true
		}
	}
	return false
}

// lagCheck is how often a tee waiting for room in a full output looks
// whether the others still have enough to read.
const lagCheck = 2 * time.Millisecond

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
