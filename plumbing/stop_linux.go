package plumbing

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Stop tears in-process stages down: once Close is called, every ring
// wait and every Peek or Reserve of an end that watches it fails with
// ErrStopped, and so does a FileSource or FileSink waiting in a read or a
// write of a file in the runtime's poller (a pipe end in non-blocking
// mode: however long whoever holds the other end waits), and a FileSource
// that WatchReads (a terminal, say). The zero value is not usable; use
// NewStop. A nil *Stop never stops.
type Stop struct {
	ch   chan struct{}
	done atomic.Bool

	mu    sync.Mutex
	efd   int        // an eventfd readable once stopped, made on first use; -1 until then
	files []*os.File // files in the poller whose waits Close ends (see watch)
}

// NewStop returns a Stop that has not stopped.
func NewStop() *Stop { return &Stop{ch: make(chan struct{}), efd: -1} }

// Close stops; later calls do nothing. It is safe for concurrent use.
func (s *Stop) Close() {
	if s.done.CompareAndSwap(false, true) {
		close(s.ch)
		s.mu.Lock()
		if s.efd >= 0 {
			s.signalFD()
		}
		for _, f := range s.files {
			_ = f.SetDeadline(stopped)
		}
		s.mu.Unlock()
	}
}

// Release closes the descriptor behind the Stop, once nothing watches it
// any more (every stage that was given it has ended).
func (s *Stop) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = nil
	efd := s.efd
	s.efd = -2 // released: fd() makes no new one
	if efd < 0 {
		return nil
	}
	return unix.Close(efd)
}

// stopped is the deadline that ends a wait in the poller: long past.
var stopped = time.Unix(1, 0)

// watch makes Close end every wait of f in a read or a write, when f is
// in the runtime's poller (its descriptor was in non-blocking mode when
// the File was made), by moving its deadline into the past: the read or
// write then fails with os.ErrDeadlineExceeded. It reports whether f is
// such a file; a nil Stop watches nothing. Closing f is safe meanwhile.
func (s *Stop) watch(f *os.File) bool {
	if s == nil || f == nil || f.SetDeadline(time.Time{}) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done.Load() {
		_ = f.SetDeadline(stopped)
	} else if s.efd != -2 {
		s.files = append(s.files, f)
	}
	return true
}

// Stopped reports whether Close was called. A nil Stop never stops.
func (s *Stop) Stopped() bool { return s != nil && s.done.Load() }

// channel returns a channel closed at Close, nil (never ready) for a nil Stop.
func (s *Stop) channel() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.ch
}

// fd returns a descriptor that is readable once the Stop stopped, for a
// poll beside another descriptor; -1 if there is none (nil Stop, released,
// or no eventfd to be had).
func (s *Stop) fd() int {
	if s == nil {
		return -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.efd == -1 {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return -1
		}
		s.efd = fd
		if s.done.Load() {
			s.signalFD()
		}
	}
	return max(s.efd, -1)
}

func (s *Stop) signalFD() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(s.efd, one[:])
}

// waitReadable blocks until fd can be read without blocking (or is at its
// end, or failed), or the Stop stopped (ErrStopped).
func (s *Stop) waitReadable(fd int) error {
	sfd := s.fd()
	if sfd < 0 {
		return nil // nothing to watch: the read itself will wait
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(sfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[1].Revents != 0 {
			if s.Stopped() {
				return ErrStopped
			}
			return nil
		}
		if fds[0].Revents != 0 {
			return nil
		}
	}
}

// WaitFIFOWriter waits until the FIFO f, opened for reading without
// blocking, has a writer that wrote or came and went, or s stopped
// (ErrStopped). A read before that would find end of file: a FIFO that no
// writer has opened yet reads as one whose writers are gone. poll waits
// for the first writer, as open(2) without O_NONBLOCK would, but a Stop
// can end it.
//
// f stays in the runtime's poller (its descriptor is borrowed through
// SyscallConn, where Fd would make it blocking).
func WaitFIFOWriter(f *os.File, s *Stop) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := rc.Control(func(fd uintptr) { werr = waitFirstWriter(int(fd), s) }); err != nil {
		return err
	}
	return werr
}

func waitFirstWriter(fd int, s *Stop) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if sfd := s.fd(); sfd >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(sfd), Events: unix.POLLIN})
	}
	for {
		if s.Stopped() {
			return ErrStopped
		}
		_, err := unix.Poll(fds, -1)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case fds[0].Revents != 0:
			return nil
		}
	}
}
