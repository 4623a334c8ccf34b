package plumbing

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestMeterCountsRingBytes writes through a mem ring and a shm ring and
// reads their meters while the bytes are queued, once read, and after the
// meter let the ring go.
func TestMeterCountsRingBytes(t *testing.T) {
	memW, memR, memM, err := newMemRing(MinRingSize)
	if err != nil {
		t.Fatal(err)
	}
	files, err := NewRing(MinRingSize)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	shmM, err := shmMeter(files.Mem)
	if err != nil {
		t.Fatal(err)
	}
	shmW, err := OpenRingWriter(files.Mem, files.WriterSock)
	if err != nil {
		t.Fatal(err)
	}
	shmR, err := OpenRingReader(files.Mem, files.ReaderSock)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		w    io.WriteCloser
		r    io.ReadCloser
		m    *Meter
	}{{"mem", memW, memR, memM}, {"shm", shmW, shmR, shmM}} {
		data := bytes.Repeat([]byte("0123456789abcdef"), 100) // 1600 bytes
		if _, err := tc.w.Write(data); err != nil {
			t.Fatal(err)
		}
		if f, ok := tc.w.(interface{ Flush() error }); ok {
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := tc.m.Count(), (Count{Known: true, Written: 1600}); !sameBytes(got, want) {
			t.Errorf("%s: queued: %+v, want %+v", tc.name, got, want)
		}
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(tc.r, buf); err != nil {
			t.Fatal(err)
		}
		if got, want := tc.m.Count(), (Count{Known: true, Written: 1600, Read: 1000}); !sameBytes(got, want) || got.Queued() != 600 {
			t.Errorf("%s: part read: %+v (queued %d), want %+v", tc.name, got, got.Queued(), want)
		}
		tc.w.Close()
		if _, err := io.ReadAll(tc.r); err != nil {
			t.Fatal(err)
		}
		tc.r.Close()
		if err := tc.m.close(); err != nil {
			t.Fatal(err)
		}
		if got, want := tc.m.Count(), (Count{Known: true, Written: 1600, Read: 1600}); !sameBytes(got, want) {
			t.Errorf("%s: after close: %+v, want %+v", tc.name, got, want)
		}
	}
	var none *Meter
	if got := none.Count(); got.Known {
		t.Errorf("a nil meter knows %+v", got)
	}
}

// TestMeterCountsWaits has a reader wait on an empty mem ring until a
// writer comes, then a writer wait on a full one until the reader drains
// it: the meter counts the reader's sleep as starved and the writer's as
// blocked, and neither side's time as the other's.
func TestMeterCountsWaits(t *testing.T) {
	w, r, m, err := newMemRing(MinRingSize)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 10)
		n, _ := r.Read(buf)
		got <- buf[:n]
	}()
	// The reader sleeps only once it has announced its need; wait for
	// that (a deadline catches a hang), then keep it asleep a moment.
	waitFor(t, func() bool { return r.r.readerWaiting.Load() != 0 })
	time.Sleep(20 * time.Millisecond)
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != "x" {
			t.Fatalf("read %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader never woke")
	}
	c := m.Count()
	if c.Starved <= 0 || c.Blocked != 0 {
		t.Errorf("after the reader's wait: starved %v, blocked %v; want starved > 0, blocked 0", c.Starved, c.Blocked)
	}
	// Fill the ring; the next write waits for room.
	full := make([]byte, MinRingSize)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(append(full, 'y'))
		if err == nil {
			err = w.Flush()
		}
		done <- err
	}()
	waitFor(t, func() bool { return r.r.writerWaiting.Load() != 0 })
	time.Sleep(20 * time.Millisecond)
	if _, err := io.ReadFull(r, make([]byte, MinRingSize+1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := m.Count(); c.Blocked <= 0 {
		t.Errorf("after the writer's wait: blocked %v, want > 0", c.Blocked)
	}
}

// sameBytes compares two counts' bytes, not their waits, which depend on
// the scheduler.
func sameBytes(a, b Count) bool {
	return a.Known == b.Known && a.Written == b.Written && a.Read == b.Read
}

// waitFor polls cond until it holds, failing after a deadline that only a
// hang reaches.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMeterSeesWaitingSides: a meter knows its ring's size, and sees a
// writer that sleeps on a full ring and a reader that sleeps on an empty
// one, as --progress shows them.
func TestMeterSeesWaitingSides(t *testing.T) {
	w, r, m, err := newMemRing(MinRingSize)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if m.Size() != MinRingSize {
		t.Errorf("size %d, want %d", m.Size(), MinRingSize)
	}
	var none *Meter
	if none.Size() != 0 {
		t.Errorf("a nil meter has size %d", none.Size())
	}
	until := func(what string, ok func(Count) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(m.Count()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen; count %+v", what, m.Count())
			}
			time.Sleep(time.Millisecond)
		}
	}
	read := make(chan error, 1)
	go func() {
		buf := make([]byte, 1)
		_, err := r.Read(buf)
		read <- err
	}()
	until("reader waits on an empty ring", func(c Count) bool { return c.ReaderWaits && !c.WriterWaits })
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 2*MinRingSize))
		// The last commit may be less than the step the reader waits
		// for: without a flush it would wait for more that never comes.
		w.Flush()
		wrote <- err
	}()
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	until("writer waits on a full ring", func(c Count) bool { return c.WriterWaits && c.Queued() > MinRingSize-MinRingSize/8 })
	var rerr, werr error
	within(t, "read the rest", func() {
		_, rerr = io.ReadFull(r, make([]byte, 2*MinRingSize-1))
		werr = <-wrote
	})
	if rerr != nil || werr != nil {
		t.Fatal(rerr, werr)
	}
	w.Close()
	r.Close()
	if c := m.Count(); c.WriterWaits || c.ReaderWaits {
		t.Errorf("a side waits after both closed: %+v", c)
	}
}
