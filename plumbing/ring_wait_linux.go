package plumbing

import (
	"errors"
	"os"
	"reflect"
	"time"

	"golang.org/x/sys/unix"
)

// ErrMixedRings is WaitAny given rings of both kinds, which no one wait
// can watch.
var ErrMixedRings = errors.New("wait: mem and shm rings cannot be watched together")

// WaitAny sleeps until one of readers has something for its goroutine: a
// step of input, input its writer flushed, or the end of the input (EOF or
// a writer gone). It returns that reader's index; the caller then Peeks
// it, which does not block. It fails with ErrStopped once stop is closed
// and with os.ErrDeadlineExceeded after deadline (the zero time is none).
// The readers must be of one kind, and not closed; a fan-in builtin (merge)
// watches its inputs with it. Like a Peek, it calls no reader's OnWait.
func WaitAny(readers []*RingReader, stop *Stop, deadline time.Time) (int, error) {
	if len(readers) == 0 {
		return 0, errors.New("wait: no readers")
	}
	_, mem := readers[0].r.w.(*chanWaker)
	for _, rd := range readers {
		if rd.r.closed {
			return 0, os.ErrClosed
		}
		if _, ok := rd.r.w.(*chanWaker); ok != mem {
			return 0, ErrMixedRings
		}
	}
	defer func() {
		for _, rd := range readers {
			rd.r.readerWaiting.Store(0)
		}
	}()
	for {
		if stop.Stopped() {
			return 0, ErrStopped
		}
		if i := firstReady(readers); i >= 0 {
			return i, nil
		}
		// Announce on every ring, then look once more: a writer that
		// moved its head before seeing the announcement is seen here.
		for _, rd := range readers {
			rd.r.readerWaiting.Store(rd.r.need(1))
		}
		if i := firstReady(readers); i >= 0 {
			return i, nil
		}
		var err error
		if mem {
			err = sleepChans(readers, stop, deadline)
		} else {
			err = pollSocks(readers, stop, deadline)
		}
		if err != nil {
			return 0, err
		}
	}
}

// firstReady is the index of the first reader with unread bytes or at its
// end, or -1.
func firstReady(readers []*RingReader) int {
	for i, rd := range readers {
		r := rd.r
		if r.head.Load() != rd.tail || r.writerClosed.Load() != 0 || !r.peer || r.w.peerGone() {
			return i
		}
	}
	return -1
}

// sleepChans waits on the wake-up channels of mem readers.
func sleepChans(readers []*RingReader, stop *Stop, deadline time.Time) error {
	cases := make([]reflect.SelectCase, 0, len(readers)+2)
	for _, rd := range readers {
		c := rd.r.w.(*chanWaker)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.s.wake[c.me])})
	}
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop.channel())})
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)})
	}
	switch i, _, _ := reflect.Select(cases); {
	case i == len(readers):
		return ErrStopped
	case i == len(readers)+1:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// pollSocks waits on the wake-up sockets of shm readers.
func pollSocks(readers []*RingReader, stop *Stop, deadline time.Time) error {
	fds := make([]unix.PollFd, len(readers))
	for i, rd := range readers {
		fds[i] = unix.PollFd{Fd: int32(rd.r.w.(*sockWaker).fd), Events: unix.POLLIN}
	}
	for {
		if stop.Stopped() {
			return ErrStopped
		}
		timeout, err := pollTimeout(stop, deadline)
		if err != nil {
			return err
		}
		n, err := unix.Poll(fds, timeout)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return err
		}
		for i, fd := range fds {
			if fd.Revents != 0 && !readers[i].r.w.(*sockWaker).drain() {
				readers[i].r.peer = false
			}
		}
		return nil
	}
}
