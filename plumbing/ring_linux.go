package plumbing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A ring is a single-producer single-consumer byte queue in shared memory,
// joining two processes with one copy per edge and no system call while
// data flows.
//
// The memory is a memfd, sealed against resizing, laid out as:
//
//	0      ┌──────────────────────────────────────────────┐
//	       │ header page                                  │
//	       │   +0   magic "gpiperng"     +8 data size    │
//	       │   +64  head: bytes ever written (writer's)   │
//	       │   +128 tail: bytes ever read   (reader's)   │
//	       │   +192 readerWaiting  +196 writerWaiting     │
//	       │   +256 writerClosed   +260 readerClosed      │
//	4096   ├──────────────────────────────────────────────┤
//	       │ data: size bytes, a power of two, page-sized │
//	       └──────────────────────────────────────────────┘
//
// Each side maps the data twice, back to back, so that any run of bytes in
// the ring is contiguous in memory even across the wrap-around: a reader can
// look at a whole line, a writer fill a whole block, in place.
//
// Wake-ups and peer death go over a Unix socket pair, one end per side. A
// side that finds the ring full (writer) or empty (reader) announces that it
// sleeps (a waiting flag in the header), checks the ring again, and only then
// blocks in poll on its socket; the other side, after moving head or tail,
// sends one byte only if the waiting flag was set. Because the flags and
// indices are sequentially consistent atomics, no wake-up is lost, and none
// is sent while both sides keep up. When a process exits, crashes or is
// killed, the kernel closes its socket end, and the peer's poll returns at
// once: a writer then fails like one on a broken pipe, a reader sees the
// committed data and then either EOF (the writer had closed) or
// ErrWriterDied.

const (
	ringMagic      = 0x676e726570697067 // "gpiperng" read as a little-endian uint64
	ringHeaderSize = 4096

	offMagic         = 0
	offSize          = 8
	offHead          = 64
	offTail          = 128
	offReaderWaiting = 192
	offWriterWaiting = 196
	offWriterClosed  = 256
	offReaderClosed  = 260
)

// DefaultRingSize is the data capacity of a ring when none is asked for:
// big enough for large batches, small enough to stay in a core's cache.
const DefaultRingSize = 1 << 20

// MinRingSize is the smallest ring: one page.
const MinRingSize = 4096

// ErrWriterDied is what a ring reader gets, after the last committed byte,
// when the writer went away without closing the ring (it crashed or was
// killed).
var ErrWriterDied = errors.New("input ring: writer died before closing it")

// RingFiles are the descriptors of one ring: the shared memory and the two
// ends of its wake-up socket. The creator hands Mem and WriterSock to the
// writing process, Mem and ReaderSock to the reading one.
type RingFiles struct {
	Mem        *os.File
	WriterSock *os.File
	ReaderSock *os.File
}

// NewRing creates a ring whose data holds size bytes (rounded up to a power
// of two, at least MinRingSize). All descriptors are close-on-exec; the
// caller closes them.
func NewRing(size int) (*RingFiles, error) {
	size = ringCapacity(size)
	fd, err := unix.MemfdCreate("gpipe-ring", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create ring memory: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "gpipe-ring")
	if err := initRing(fd, size); err != nil {
		mem.Close()
		return nil, err
	}
	socks, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		mem.Close()
		return nil, fmt.Errorf("create ring socket: %w", err)
	}
	return &RingFiles{
		Mem:        mem,
		WriterSock: os.NewFile(uintptr(socks[0]), "gpipe-ring-writer"),
		ReaderSock: os.NewFile(uintptr(socks[1]), "gpipe-ring-reader"),
	}, nil
}

// Close closes all three descriptors.
func (f *RingFiles) Close() error {
	return errors.Join(f.Mem.Close(), f.WriterSock.Close(), f.ReaderSock.Close())
}

func ringCapacity(size int) int {
	c := MinRingSize
	for c < size && c < 1<<40 {
		c <<= 1
	}
	return c
}

// initRing sizes the memory, seals its size and writes the header.
func initRing(fd, size int) error {
	if err := unix.Ftruncate(fd, int64(ringHeaderSize+size)); err != nil {
		return fmt.Errorf("size ring memory: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("seal ring memory: %w", err)
	}
	hdr, err := unix.Mmap(fd, 0, ringHeaderSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map ring header: %w", err)
	}
	*(*uint64)(unsafe.Pointer(&hdr[offSize])) = uint64(size)
	(*atomic.Uint64)(unsafe.Pointer(&hdr[offMagic])).Store(ringMagic)
	return unix.Munmap(hdr)
}

// ring is one process's view of a ring: its mapping and its socket.
type ring struct {
	base unsafe.Pointer // header page, followed by the data mapped twice
	size uint64
	mask uint64
	data []byte // 2*size bytes: the data and its mirror
	sock int    // this side's end of the wake-up socket
	peer bool   // false once the peer's socket end is known closed

	head, tail                   *atomic.Uint64
	readerWaiting, writerWaiting *atomic.Uint32
	writerClosed, readerClosed   *atomic.Uint32
}

// mapRing maps the ring memory mem with the data mirrored. sock is this
// side's socket end; mapRing takes ownership of neither descriptor's file,
// duplicating what it keeps.
func mapRing(mem, sock *os.File) (*ring, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(mem.Fd()), &st); err != nil {
		return nil, fmt.Errorf("ring memory: %w", err)
	}
	hdr, err := unix.Mmap(int(mem.Fd()), 0, ringHeaderSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring header: %w", err)
	}
	magic := (*atomic.Uint64)(unsafe.Pointer(&hdr[offMagic])).Load()
	size := *(*uint64)(unsafe.Pointer(&hdr[offSize]))
	_ = unix.Munmap(hdr)
	if magic != ringMagic || size < MinRingSize || size&(size-1) != 0 || st.Size != int64(ringHeaderSize+size) {
		return nil, fmt.Errorf("ring memory: not a gpipe ring (size %d, file %d bytes)", size, st.Size)
	}

	total := uintptr(ringHeaderSize + 2*size)
	// Reserve the whole range, then map the file over it twice.
	base, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("reserve ring mapping: %w", err)
	}
	fail := func(what string, err error) (*ring, error) {
		_ = unix.MunmapPtr(base, total)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	if _, err := unix.MmapPtr(int(mem.Fd()), 0, base, uintptr(ringHeaderSize+size), prot, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
		return fail("map ring", err)
	}
	mirror := unsafe.Add(base, ringHeaderSize+size)
	if _, err := unix.MmapPtr(int(mem.Fd()), ringHeaderSize, mirror, uintptr(size), prot, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
		return fail("map ring mirror", err)
	}
	sockFD, err := unix.FcntlInt(sock.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail("ring socket", err)
	}
	at := func(off uintptr) unsafe.Pointer { return unsafe.Add(base, off) }
	return &ring{
		base:          base,
		size:          size,
		mask:          size - 1,
		data:          unsafe.Slice((*byte)(at(ringHeaderSize)), 2*size),
		sock:          sockFD,
		peer:          true,
		head:          (*atomic.Uint64)(at(offHead)),
		tail:          (*atomic.Uint64)(at(offTail)),
		readerWaiting: (*atomic.Uint32)(at(offReaderWaiting)),
		writerWaiting: (*atomic.Uint32)(at(offWriterWaiting)),
		writerClosed:  (*atomic.Uint32)(at(offWriterClosed)),
		readerClosed:  (*atomic.Uint32)(at(offReaderClosed)),
	}, nil
}

// unmap releases the mapping and the socket; later calls do nothing.
func (r *ring) unmap() error {
	if r.base == nil {
		return nil
	}
	err := unix.MunmapPtr(r.base, uintptr(ringHeaderSize+2*r.size))
	r.base, r.data = nil, nil
	return errors.Join(err, unix.Close(r.sock))
}

// clampWait caps how much a side may wait for at half the ring. A writer
// waiting for n free bytes and a reader waiting for m unread ones could
// otherwise wait for each other forever whenever n+m exceeds the size; with
// both at most half, a waiting writer means more than half is unread, which
// no waiting reader can want.
func (r *ring) clampWait(n int) uint64 {
	return min(uint64(max(n, 1)), r.size/2)
}

// MaxWait is the most a Reserve or Peek on a ring of this size waits for:
// half the ring. A stage needing more contiguous bytes (a long line) takes
// what it gets and copies.
func MaxWait(size int) int { return size / 2 }

// wake tells the peer to look again if it announced that it sleeps.
func (r *ring) wake(waiting *atomic.Uint32) {
	if waiting.Load() == 1 && waiting.CompareAndSwap(1, 0) {
		// A full socket buffer would mean the peer is already far behind
		// on wake-ups; it will look at the ring anyway.
		_, _ = unix.Write(r.sock, []byte{1})
	}
}

// sleep blocks until the peer sends a wake-up or goes away; it reports
// whether the peer is still there. Stray wake-up bytes are drained.
func (r *ring) sleep() bool {
	if !r.peer {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(r.sock), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			r.peer = false
			return false
		}
		break
	}
	var buf [64]byte
	n, err := unix.Read(r.sock, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(r.sock, buf[:])
	}
	if n <= 0 {
		r.peer = false // EOF or error: the peer's end is closed
		return false
	}
	return true
}

// RingWriter is the producing side of a ring. It is not safe for concurrent
// use.
type RingWriter struct {
	r    *ring
	head uint64 // local copy of the published head
}

// OpenRingWriter maps the ring for writing. mem and sock stay owned by the
// caller, who may close them once this returns.
func OpenRingWriter(mem, sock *os.File) (*RingWriter, error) {
	r, err := mapRing(mem, sock)
	if err != nil {
		return nil, err
	}
	return &RingWriter{r: r, head: r.head.Load()}, nil
}

// Reserve returns all the free space at the ring's head once at least
// atLeast bytes are free, waiting for the reader to make room. atLeast is
// capped at half the ring (see MaxWait); 0 means 1. The slice is valid until
// Commit. It fails with syscall.EPIPE once the reader has gone.
func (w *RingWriter) Reserve(atLeast int) ([]byte, error) {
	r := w.r
	want := r.clampWait(atLeast)
	for {
		if r.readerClosed.Load() != 0 || !r.peer {
			return nil, syscall.EPIPE
		}
		free := r.size - (w.head - r.tail.Load())
		if free >= want {
			off := w.head & r.mask
			return r.data[off : off+free : off+free], nil
		}
		r.writerWaiting.Store(1)
		if r.size-(w.head-r.tail.Load()) >= want || r.readerClosed.Load() != 0 {
			r.writerWaiting.Store(0)
			continue
		}
		if !r.sleep() {
			// The reader's process is gone: what it did not read is lost,
			// as on a pipe.
			r.writerWaiting.Store(0)
			if r.size-(w.head-r.tail.Load()) < want {
				return nil, syscall.EPIPE
			}
		}
		r.writerWaiting.Store(0)
	}
}

// Commit publishes the first n bytes of the last reserved space, waking
// the reader if it waits.
func (w *RingWriter) Commit(n int) {
	w.head += uint64(n)
	w.r.head.Store(w.head)
	w.r.wake(w.r.readerWaiting)
}

// Write copies p into the ring, waiting for room as needed. It fails with
// syscall.EPIPE once the reader has gone.
func (w *RingWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		buf, err := w.Reserve(1)
		if err != nil {
			return done, err
		}
		n := copy(buf, p[done:])
		w.Commit(n)
		done += n
	}
	return done, nil
}

// Close marks the end of the data, so the reader sees EOF after the last
// byte, and unmaps the ring. Later calls do nothing.
func (w *RingWriter) Close() error {
	if w.r.base == nil {
		return nil
	}
	w.r.writerClosed.Store(1)
	w.r.wake(w.r.readerWaiting)
	return w.r.unmap()
}

// Size is the ring's data capacity.
func (w *RingWriter) Size() int { return int(w.r.size) }

// RingReader is the consuming side of a ring. It is not safe for concurrent
// use.
type RingReader struct {
	r    *ring
	tail uint64
}

// OpenRingReader maps the ring for reading. mem and sock stay owned by the
// caller, who may close them once this returns.
func OpenRingReader(mem, sock *os.File) (*RingReader, error) {
	r, err := mapRing(mem, sock)
	if err != nil {
		return nil, err
	}
	return &RingReader{r: r, tail: r.tail.Load()}, nil
}

// Peek returns every unread byte once at least atLeast of them are there
// (capped at half the ring, see MaxWait), waiting for the writer as needed. The
// slice points into the ring and is valid until Release. At the end it
// returns what is left with io.EOF, or with ErrWriterDied if the writer went
// away without closing the ring.
func (rd *RingReader) Peek(atLeast int) ([]byte, error) {
	r := rd.r
	want := r.clampWait(atLeast)
	for {
		closed := r.writerClosed.Load() != 0 // before head: a closed writer's head is final
		avail := r.head.Load() - rd.tail
		if avail >= want || closed {
			off := rd.tail & r.mask
			buf := r.data[off : off+avail : off+avail]
			if avail < want {
				return buf, io.EOF
			}
			return buf, nil
		}
		r.readerWaiting.Store(1)
		if r.head.Load()-rd.tail >= want || r.writerClosed.Load() != 0 {
			r.readerWaiting.Store(0)
			continue
		}
		if !r.sleep() {
			r.readerWaiting.Store(0)
			closed := r.writerClosed.Load() != 0
			avail := r.head.Load() - rd.tail
			if avail >= want || closed {
				continue
			}
			off := rd.tail & r.mask
			return r.data[off : off+avail : off+avail], ErrWriterDied
		}
		r.readerWaiting.Store(0)
	}
}

// Release gives the first n peeked bytes back to the writer.
func (rd *RingReader) Release(n int) {
	rd.tail += uint64(n)
	rd.r.tail.Store(rd.tail)
	rd.r.wake(rd.r.writerWaiting)
}

// Read copies unread bytes into p, waiting for at least one.
func (rd *RingReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	buf, err := rd.Peek(1)
	n := copy(p, buf)
	rd.Release(n)
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// Close tells the writer that nobody reads any more (its next Reserve fails
// with EPIPE) and unmaps the ring. Later calls do nothing.
func (rd *RingReader) Close() error {
	if rd.r.base == nil {
		return nil
	}
	rd.r.readerClosed.Store(1)
	rd.r.wake(rd.r.writerWaiting)
	return rd.r.unmap()
}

// Size is the ring's data capacity.
func (rd *RingReader) Size() int { return int(rd.r.size) }
