package plumbing

import (
	"bytes"
	"io"
	"testing"
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
		if got, want := tc.m.Count(), (Count{Known: true, Written: 1600}); got != want {
			t.Errorf("%s: queued: %+v, want %+v", tc.name, got, want)
		}
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(tc.r, buf); err != nil {
			t.Fatal(err)
		}
		if got, want := tc.m.Count(), (Count{Known: true, Written: 1600, Read: 1000}); got != want || got.Queued() != 600 {
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
		if got, want := tc.m.Count(), (Count{Known: true, Written: 1600, Read: 1600}); got != want {
			t.Errorf("%s: after close: %+v, want %+v", tc.name, got, want)
		}
	}
	var none *Meter
	if got := none.Count(); got.Known {
		t.Errorf("a nil meter knows %+v", got)
	}
}
