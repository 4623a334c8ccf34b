package plumbing

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestStopReleasedBeforeItsDescriptor: a Stop released before anything
// asked for its descriptor makes none afterwards (fd says -1, as it does
// once released), and keeps no file to watch.
func TestStopReleasedBeforeItsDescriptor(t *testing.T) {
	s := NewStop()
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if fd := s.fd(); fd != -1 {
		unix.Close(fd)
		t.Errorf("fd() after Release = %d, want -1: a descriptor nobody releases", fd)
	}
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	polled := nonblockingFile(t, r)
	defer polled.Close()
	if !s.watch(polled) || len(s.files) != 0 {
		t.Errorf("a released Stop keeps %d files, want none", len(s.files))
	}
	if err := s.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}
