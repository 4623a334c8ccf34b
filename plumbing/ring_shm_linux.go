package plumbing

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shm kind of ring: a sealed memfd mapped by two processes, with a
// Unix socket pair for wake-ups. When a process exits, crashes or is
// killed, the kernel closes its socket end, and the peer's poll returns at
// once: a writer then fails like one on a broken pipe, a reader sees the
// committed data and then either EOF (the writer had closed) or
// ErrWriterDied.

// RingFiles are the descriptors of one shm ring: the shared memory and the
// two ends of its wake-up socket. The creator hands Mem and WriterSock to
// the writing process, Mem and ReaderSock to the reading one.
type RingFiles struct {
	Mem        *os.File
	WriterSock *os.File
	ReaderSock *os.File
}

// NewRing creates a shm ring whose data holds size bytes (rounded up to a
// power of two, at least MinRingSize). All descriptors are close-on-exec,
// the sockets non-blocking; the caller closes them.
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
	socks, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
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

// mapShmRing maps the ring memory mem with the data mirrored. sock is this
// side's socket end; mapShmRing takes ownership of neither descriptor's
// file, duplicating what it keeps.
func mapShmRing(mem, sock *os.File) (*ring, error) {
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
	if magic != ringMagic || size < MinRingSize || size > MaxRingSize || size&(size-1) != 0 || st.Size != int64(ringHeaderSize+size) {
		return nil, fmt.Errorf("ring memory: not a gpipe ring (size %d, file %d bytes)", size, st.Size)
	}
	base, total, err := reserveRing(size)
	if err != nil {
		return nil, err
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
	if err := unix.SetNonblock(sockFD, true); err != nil {
		unix.Close(sockFD)
		return fail("ring socket", err)
	}
	unmap := func() error { return unix.MunmapPtr(base, total) }
	return newRing(base, size, &sockWaker{fd: sockFD}, unmap), nil
}

// reserveRing reserves address space for the header and the data mapped
// twice, to be mapped over.
func reserveRing(size uint64) (unsafe.Pointer, uintptr, error) {
	total := uintptr(ringHeaderSize + 2*size)
	base, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, 0, fmt.Errorf("reserve ring mapping: %w", err)
	}
	return base, total, nil
}

// OpenRingWriter maps a shm ring for writing. mem and sock stay owned by
// the caller, who may close them once this returns.
func OpenRingWriter(mem, sock *os.File) (*RingWriter, error) {
	r, err := mapShmRing(mem, sock)
	if err != nil {
		return nil, err
	}
	return &RingWriter{r: r, head: r.head.Load()}, nil
}

// OpenRingReader maps a shm ring for reading. mem and sock stay owned by
// the caller, who may close them once this returns.
func OpenRingReader(mem, sock *os.File) (*RingReader, error) {
	r, err := mapShmRing(mem, sock)
	if err != nil {
		return nil, err
	}
	return &RingReader{r: r, tail: r.tail.Load()}, nil
}

// sockWaker wakes over this side's end of a Unix socket pair. The socket
// is non-blocking: a wake-up never blocks (a full socket buffer means the
// peer has wake-ups enough), and a spurious poll return reads nothing.
type sockWaker struct {
	fd int
}

func (s *sockWaker) wake() { _, _ = unix.Write(s.fd, []byte{1}) }

// stopPoll is how often a side that watches a Stop looks at it while it
// sleeps on a socket: only an in-process builtin on a shm ring does.
const stopPoll = 50 // milliseconds

func (s *sockWaker) sleep(stop *Stop, deadline time.Time) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	for {
		if stop.Stopped() {
			return true, ErrStopped
		}
		timeout, err := pollTimeout(stop, deadline)
		if err != nil {
			return true, err
		}
		n, err := unix.Poll(fds, timeout)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue // interrupted, or time to look at the stop and the deadline
		}
		if err != nil {
			return false, nil
		}
		break
	}
	return s.drain(), nil
}

// pollTimeout is how long a poll may block, in milliseconds (-1: for
// ever): until the deadline, and no longer than stopPoll when a Stop is
// watched.
func pollTimeout(stop *Stop, deadline time.Time) (int, error) {
	timeout := -1
	if stop != nil {
		timeout = stopPoll
	}
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		ms := int((d + time.Millisecond - 1) / time.Millisecond)
		if timeout < 0 || ms < timeout {
			timeout = ms
		}
	}
	return timeout, nil
}

// drain reads the wake-up bytes waiting on the socket and reports whether
// the peer is still there.
func (s *sockWaker) drain() bool {
	var buf [64]byte
	for {
		n, err := unix.Read(s.fd, buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true // spurious
		case n <= 0:
			return false // EOF or error: the peer's end is closed
		}
		return true
	}
}

// peerGone is known only once a poll saw the socket's end: see sleep.
func (s *sockWaker) peerGone() bool { return false }

// abandon closes nothing here: the socket closing (at exit, or in close)
// tells the peer, and the closed flag stays unset.
func (s *sockWaker) abandon() {}

func (s *sockWaker) close() error { return unix.Close(s.fd) }
