package builtins

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/plumbing"
)

// spliceDealer deals a regular file to pipes (par's copies are programs,
// its input a file: "par -- grep x < big.log") with splice(2), from
// explicit offsets: no byte of the input passes through user space but
// the few read to find where a unit's last line ends. A unit goes to the
// copy whose pipe holds the least (FIONREAD), which is the least queued
// rule of the queued dealer with the pipes as the queues.
type spliceDealer struct {
	in    *plumbing.FileSource
	fd    int
	off   int64 // the next byte to deal
	block int
	pipes []int // -1 once the copy has gone
	names []string
	stats []OutputStats
	last  int       // the output that took the previous unit
	seen  time.Time // when the pipes were last looked at, for Starved
	probe []byte

	// ordered frames each unit (par -k) and deals them in turn.
	ordered bool
	// each is the header every copy gets first (every unit, ordered).
	each []byte
	// ranges deals each unit's place in the file (frameRange), not its
	// bytes: the copies read the file themselves (ordered).
	ranges   bool
	dev, ino uint64
}

// run deals the file from d.off to its end and seeks the file there.
func (d *spliceDealer) run() error {
	d.seen = time.Now()
	d.probe = make([]byte, 4096)
	var err error
	if d.each != nil && !d.ordered {
		for t := range d.pipes {
			gone, werr := d.writeAll(t, d.each)
			if gone {
				d.pipes[t] = -1
			}
			if werr != nil {
				return werr
			}
		}
	}
	if err == nil {
		err = d.deal()
	}
	if serr := d.in.SeekTo(d.off); err == nil {
		err = serr
	}
	return err
}

func (d *spliceDealer) deal() error {
	var st unix.Stat_t
	for {
		if err := unix.Fstat(d.fd, &st); err != nil {
			return err
		}
		if d.off >= st.Size {
			return nil
		}
		if d.ordered {
			if err := d.dealOrdered(st.Size); err != nil {
				return err
			}
			continue
		}
		for d.off < st.Size {
			end, err := d.unitEnd(st.Size)
			if err != nil {
				return err
			}
			t, err := d.target()
			if err != nil {
				return err
			}
			if err := d.move(t, end); err != nil {
				return err
			}
		}
		// The file may have grown since: deal that too, as cat would.
	}
}

// target is the live output whose pipe holds the least, the one after the
// last unit's first among equals; it counts the time since the last look
// as starved for those found empty. Every output gone is a broken pipe.
func (d *spliceDealer) target() (int, error) {
	now := time.Now()
	best, least := -1, -1
	n := len(d.pipes)
	for k := 1; k <= n; k++ {
		i := (d.last + k + n) % n
		if d.pipes[i] < 0 {
			continue
		}
		queued, err := unix.IoctlGetInt(d.pipes[i], unix.TIOCINQ) // FIONREAD
		if err != nil {
			queued = 0
		}
		if queued == 0 {
			d.stats[i].Starved += now.Sub(d.seen)
		}
		if best < 0 || queued < least {
			best, least = i, queued
		}
	}
	d.seen = now
	if best < 0 {
		return -1, fmt.Errorf("every output: %w", syscall.EPIPE)
	}
	d.last = best
	return best, nil
}

// unitEnd is where the unit from d.off ends: just after the first newline
// at or past d.off+block (a line longer than a block makes the unit
// longer), or at size.
func (d *spliceDealer) unitEnd(size int64) (int64, error) {
	at := d.off + int64(d.block) - 1
	for at < size {
		n, err := unix.Pread(d.fd, d.probe[:min(int64(len(d.probe)), size-at)], at)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
		if i := bytes.IndexByte(d.probe[:n], '\n'); i >= 0 {
			return at + int64(i) + 1, nil
		}
		at += int64(n)
	}
	return size, nil
}

// move splices the input up to end into output t's pipe, waiting for room
// as it fills. A copy that has gone (broken pipe) is dropped, and the rest
// of its unit with it, as the queued dealer drops what it queued for it.
func (d *spliceDealer) move(t int, end int64) error {
	gone, err := d.spliceRange(t, &d.off, end)
	if gone {
		d.pipes[t] = -1
		d.off = end
	}
	return err
}

// spliceRange splices the file from *off up to end into output t's pipe,
// waiting for room as it fills; gone when the copy has gone (broken
// pipe). Ordered copies each run it in a goroutine of their own, over
// ranges of their own.
func (d *spliceDealer) spliceRange(t int, off *int64, end int64) (gone bool, err error) {
	for *off < end {
		n, err := unix.Splice(d.fd, off, d.pipes[t], nil, int(end-*off), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if n > 0 {
			atomicAdd(&d.stats[t].Bytes, n)
		}
		switch {
		case err == nil && n == 0:
			return false, nil // the file shrank
		case err == nil, err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if _, err := d.in.WaitWritable([]int{d.pipes[t]}, lagCheck); err != nil {
				return false, err
			}
		case errors.Is(err, syscall.EPIPE):
			return true, nil
		default:
			return false, fmt.Errorf("%s: %w", d.names[t], err)
		}
	}
	return false, nil
}

// dealOrdered deals the file's units in turn, framed (par -k): it cuts
// them here, one after the other, and each copy's goroutine writes its
// units' headers and splices their bytes, so that a copy busy with its
// unit holds up none of the others.
func (d *spliceDealer) dealOrdered(size int64) error {
	type unit struct{ from, to int64 }
	todo := make([]chan unit, len(d.pipes))
	done := make(chan struct{})
	var stop sync.Once
	errs := make([]error, len(d.pipes))
	var wg sync.WaitGroup
	for t := range d.pipes {
		todo[t] = make(chan unit, 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			gone := false
			for u := range todo[t] {
				if gone || errs[t] != nil {
					continue // its turns are lost; the merge says so
				}
				if d.ranges {
					// The header, if any, then where the unit is.
					var frame []byte
					if len(d.each) > 0 {
						head := chunkHead(len(d.each), false)
						frame = append(append(frame, head[:]...), d.each...)
					}
					head := chunkHead(rangeSize, true)
					binary.LittleEndian.PutUint64(head[:], binary.LittleEndian.Uint64(head[:])|frameRange)
					frame = append(frame, head[:]...)
					frame = binary.LittleEndian.AppendUint64(frame, uint64(u.from))
					frame = binary.LittleEndian.AppendUint64(frame, uint64(u.to-u.from))
					frame = binary.LittleEndian.AppendUint64(frame, d.dev)
					frame = binary.LittleEndian.AppendUint64(frame, d.ino)
					if gone, errs[t] = d.writeAll(t, frame); errs[t] != nil {
						stop.Do(func() { close(done) })
					}
					continue
				}
				head := chunkHead(len(d.each)+int(u.to-u.from), true)
				frameStart := append(head[:], d.each...)
				if gone, errs[t] = d.writeAll(t, frameStart); gone || errs[t] != nil {
					if errs[t] != nil {
						stop.Do(func() { close(done) })
					}
					continue
				}
				off := u.from
				if gone, errs[t] = d.spliceRange(t, &off, u.to); errs[t] != nil {
					stop.Do(func() { close(done) })
				}
			}
		}()
	}
	var err error
	for turn := 0; d.off < size && err == nil; turn++ {
		var end int64
		if end, err = d.unitEnd(size); err != nil {
			break
		}
		select {
		case todo[turn%len(todo)] <- unit{d.off, end}:
			d.off = end
		case <-done:
			err = errStopReading
		}
	}
	for _, c := range todo {
		close(c)
	}
	wg.Wait()
	if err == errStopReading {
		err = nil
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// writeAll writes p whole to output t's pipe; gone when the copy has gone.
func (d *spliceDealer) writeAll(t int, p []byte) (gone bool, err error) {
	for len(p) > 0 {
		k, err := unix.Write(d.pipes[t], p)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if _, err := d.in.WaitWritable([]int{d.pipes[t]}, lagCheck); err != nil {
				return false, err
			}
		case errors.Is(err, syscall.EPIPE):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("%s: %w", d.names[t], err)
		default:
			p = p[k:]
			atomicAdd(&d.stats[t].Bytes, int64(k))
		}
	}
	return false, nil
}

func atomicAdd(p *int64, n int64) { atomic.AddInt64(p, n) }

// spliceDeal runs a spliceDealer when in is a regular file and every sink
// a pipe; handled false (nothing done) otherwise.
func spliceDeal(in plumbing.Source, sinks []plumbing.Sink, names []string, block int, ordered, ranges bool, each []byte, files Files) (handled bool, err error) {
	src, ok := in.(*plumbing.FileSource)
	if !ok {
		return false, nil
	}
	fd, off, ok := src.RegularFD()
	if !ok {
		return false, nil
	}
	pipes := make([]int, len(sinks))
	for i, s := range sinks {
		if pipes[i], ok = pipeSink(s); !ok {
			return false, nil
		}
	}
	for _, fd := range pipes {
		// Large pipes: fewer switches between the dealer and the copies.
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, slotPipe)
	}
	d := &spliceDealer{in: src, fd: fd, off: off, block: block, pipes: pipes, names: names, stats: make([]OutputStats, len(sinks)), last: -1, ordered: ordered, each: each}
	if ranges {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil {
			d.ranges, d.dev, d.ino = true, uint64(st.Dev), st.Ino
		}
	}
	for i := range d.stats {
		d.stats[i].Output, d.stats[i].Counted = names[i], true
	}
	err = d.run()
	if r, ok := files.(OutputReporter); ok {
		r.ReportOutputs(d.stats)
	}
	if errors.Is(err, plumbing.ErrStopped) {
		return true, err
	}
	var errs []error
	for i, s := range sinks {
		if cerr := s.Close(); cerr != nil && !plumbing.IsBrokenPipe(cerr) && pipes[i] >= 0 {
			errs = append(errs, fmt.Errorf("%s: %w", names[i], cerr))
		}
	}
	return true, errors.Join(append([]error{err}, errs...)...)
}

var _ io.Reader = (*plumbing.FileSource)(nil)
