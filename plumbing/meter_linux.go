package plumbing

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Meter is the runtime object of one edge, which gpipe reads while the
// pipeline runs and after: how many bytes went in and came out. A ring,
// mem or shm, counts them itself in its header (the writer's head and the
// reader's tail), so reading them costs nothing on the data path; the
// meter maps that header (a shm ring's read-only, one page) or holds on to
// a mem ring's memory until the plan is closed, and keeps the last counts
// after that. A pipe or FIFO between two processes has no counter gpipe
// can read without sitting in the data path: its meter is nil, and its
// Count unknown.
type Meter struct {
	mu              sync.Mutex
	head, tail      *atomic.Uint64 // in the ring's header; nil once closed
	blocked, starve *atomic.Uint64 // the sides' sleeps, in the header
	// writerWaiting and readerWaiting are the sides' waiting words in
	// the header: non-zero while that side sleeps (see ring_linux.go).
	writerWaiting, readerWaiting *atomic.Uint32
	size                         uint64 // the ring's data capacity, read once at the start
	last                         Count
	release                      func() error
}

// Count is what an edge carried so far.
type Count struct {
	Known   bool   // false for an edge gpipe cannot see into
	Written uint64 // bytes its writer committed
	Read    uint64 // bytes its reader consumed

	// Blocked is how long the writer slept on a full ring, Starved how
	// long the reader slept on an empty one (zero where unknown).
	Blocked, Starved time.Duration

	// WriterWaits says the writer sleeps now until the reader makes room:
	// the ring is full for it. ReaderWaits says the reader sleeps now
	// until the writer commits more: the ring is empty for it. Both are
	// false once the ring is let go (the last counts).
	WriterWaits, ReaderWaits bool
}

// Queued is how many bytes wait in the edge: written and not yet read.
func (c Count) Queued() uint64 { return c.Written - c.Read }

// Count reads the edge's counters now; a nil meter's count is unknown.
func (m *Meter) Count() Count {
	if m == nil {
		return Count{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.head == nil {
		return m.last
	}
	return m.read()
}

// read reads the counters in the header; m.mu is held and the header
// mapped.
func (m *Meter) read() Count {
	return Count{Known: true, Written: m.head.Load(), Read: m.tail.Load(),
		Blocked: time.Duration(m.blocked.Load()), Starved: time.Duration(m.starve.Load()),
		WriterWaits: m.writerWaiting.Load() != 0, ReaderWaits: m.readerWaiting.Load() != 0}
}

// Size is the data capacity of the edge's ring, which Count.Queued never
// exceeds; 0 for a nil meter (a pipe or FIFO). It is read once, when the
// ring is made, before any stage could write to its header.
func (m *Meter) Size() uint64 {
	if m == nil {
		return 0
	}
	return m.size
}

// close keeps the last counts and lets go of the ring's memory.
func (m *Meter) close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.head == nil {
		return nil
	}
	m.last = m.read()
	m.last.WriterWaits, m.last.ReaderWaits = false, false
	m.head, m.tail, m.blocked, m.starve, m.writerWaiting, m.readerWaiting = nil, nil, nil, nil, nil, nil
	return m.release()
}

// headerMeter is a meter over a ring header at base, released by release.
// The header's size must be written already.
func headerMeter(base unsafe.Pointer, release func() error) *Meter {
	return &Meter{
		head:          (*atomic.Uint64)(unsafe.Add(base, offHead)),
		tail:          (*atomic.Uint64)(unsafe.Add(base, offTail)),
		blocked:       (*atomic.Uint64)(unsafe.Add(base, offWriterBlocked)),
		starve:        (*atomic.Uint64)(unsafe.Add(base, offReaderStarved)),
		writerWaiting: (*atomic.Uint32)(unsafe.Add(base, offWriterWaiting)),
		readerWaiting: (*atomic.Uint32)(unsafe.Add(base, offReaderWaiting)),
		size:          *(*uint64)(unsafe.Add(base, offSize)),
		release:       release,
	}
}

// shmMeter maps the header page of a shm ring's memory, read-only.
func shmMeter(mem *os.File) (*Meter, error) {
	hdr, err := unix.Mmap(int(mem.Fd()), 0, ringHeaderSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring header: %w", err)
	}
	return headerMeter(unsafe.Pointer(&hdr[0]), func() error { return unix.Munmap(hdr) }), nil
}
