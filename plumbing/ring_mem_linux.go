package plumbing

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The mem kind of ring joins two builtins that run as goroutines of gpipe:
// ordinary shared anonymous memory, mirrored with mremap instead of a
// memfd, and channels for wake-ups, so that no descriptor is spent and no
// system call is made while data flows.

// NewMemRing creates an in-process ring whose data holds size bytes
// (rounded up to a power of two, at least MinRingSize) and returns its two
// sides. Each side is used by one goroutine; the memory is released once
// both are closed (or abandoned).
func NewMemRing(size int) (*RingWriter, *RingReader, error) {
	w, r, m, err := newMemRing(size)
	if err != nil {
		return nil, nil, err
	}
	return w, r, m.close()
}

// newMemRing is NewMemRing with a meter of the ring, which holds on to its
// memory until the meter is closed too.
func newMemRing(size int) (*RingWriter, *RingReader, *Meter, error) {
	sz := uint64(ringCapacity(size))
	base, total, err := reserveRing(sz)
	if err != nil {
		return nil, nil, nil, err
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	if _, err := unix.MmapPtr(-1, 0, base, uintptr(ringHeaderSize+sz), prot, unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_FIXED); err != nil {
		_ = unix.MunmapPtr(base, total)
		return nil, nil, nil, fmt.Errorf("map ring: %w", err)
	}
	// An old size of 0 makes mremap map the same shared pages once more.
	data, mirror := unsafe.Add(base, ringHeaderSize), unsafe.Add(base, ringHeaderSize+sz)
	if _, err := unix.MremapPtr(data, 0, mirror, uintptr(sz), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED); err != nil {
		_ = unix.MunmapPtr(base, total)
		return nil, nil, nil, fmt.Errorf("map ring mirror: %w", err)
	}
	*(*uint64)(unsafe.Add(base, offSize)) = sz
	(*atomic.Uint64)(unsafe.Add(base, offMagic)).Store(ringMagic)

	shared := &memShared{}
	shared.wake[0] = make(chan struct{}, 1)
	shared.wake[1] = make(chan struct{}, 1)
	var refs atomic.Int32
	refs.Store(3) // the two sides and the meter
	unmap := func() error {
		if refs.Add(-1) == 0 {
			return unix.MunmapPtr(base, total)
		}
		return nil
	}
	w := newRing(base, sz, &chanWaker{s: shared, me: 0}, unmap)
	r := newRing(base, sz, &chanWaker{s: shared, me: 1}, unmap)
	return &RingWriter{r: w}, &RingReader{r: r}, headerMeter(base, unmap), nil
}

// memShared is what the two sides of a mem ring share besides the memory.
type memShared struct {
	wake [2]chan struct{} // wake[i]: side i's wake-ups; capacity one
	gone [2]atomic.Bool   // gone[i]: side i abandoned the ring
}

// chanWaker is side me (0 writer, 1 reader) of a mem ring.
type chanWaker struct {
	s  *memShared
	me int
}

func (c *chanWaker) wake() {
	select {
	case c.s.wake[1-c.me] <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (c *chanWaker) sleep(stop *Stop, deadline time.Time) (bool, error) {
	if c.s.gone[1-c.me].Load() {
		return false, nil
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return true, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c.s.wake[c.me]:
	case <-stop.channel():
		return true, ErrStopped
	case <-timeout:
		return true, os.ErrDeadlineExceeded
	}
	return !c.s.gone[1-c.me].Load(), nil
}

// peerGone reports whether the peer abandoned the ring.
func (c *chanWaker) peerGone() bool { return c.s.gone[1-c.me].Load() }

func (c *chanWaker) abandon() {
	c.s.gone[c.me].Store(true)
	c.wake()
}

func (c *chanWaker) close() error { return nil }
