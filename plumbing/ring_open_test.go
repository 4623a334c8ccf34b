package plumbing

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRingRefusesOtherFiles: only a ring's memory maps as a shm ring;
// anything else is an error that says why, not a crash.
func TestOpenRingRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	header := func(name string, size uint64, fileSize int64) *os.File {
		t.Helper()
		path := filepath.Join(dir, name)
		b := make([]byte, fileSize)
		binary.LittleEndian.PutUint64(b[offMagic:], ringMagic)
		binary.LittleEndian.PutUint64(b[offSize:], size)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	zeros := filepath.Join(dir, "zeros")
	if err := os.WriteFile(zeros, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	zf, err := os.OpenFile(zeros, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer zf.Close()
	r, w, err := Pipe(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	closed, _ := os.Open(os.DevNull)
	closed.Close()
	ring, err := NewRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	tests := []struct {
		name      string
		mem, sock *os.File
		want      string
	}{
		{"zeros", zf, ring.WriterSock, "ring memory: not a gpipe ring (size 0, file 8192 bytes)"},
		{"wrong file size", header("big", 4096, 12288), ring.WriterSock, "ring memory: not a gpipe ring (size 4096, file 12288 bytes)"},
		{"size not a power of two", header("odd", 6000, 4096+6000), ring.WriterSock, "ring memory: not a gpipe ring (size 6000, file 10096 bytes)"},
		{"size too small", header("small", 2048, 4096+2048), ring.WriterSock, "ring memory: not a gpipe ring (size 2048, file 6144 bytes)"},
		{"a pipe", r, ring.WriterSock, "map ring header: no such device"},
		{"a closed file", closed, ring.WriterSock, "ring memory: bad file descriptor"},
		{"a closed socket", ring.Mem, closed, "ring socket: bad file descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w, err := OpenRingWriter(tt.mem, tt.sock); err == nil || err.Error() != tt.want {
				t.Errorf("OpenRingWriter = %v, want %s", err, tt.want)
				if err == nil {
					w.Close()
				}
			}
			if rd, err := OpenRingReader(tt.mem, tt.sock); err == nil || err.Error() != tt.want {
				t.Errorf("OpenRingReader = %v, want %s", err, tt.want)
				if err == nil {
					rd.Close()
				}
			}
		})
	}
	// A header file of the right shape maps: the check is the shape.
	good := header("good", 4096, 8192)
	if w, err := OpenRingWriter(good, ring.WriterSock); err != nil {
		t.Errorf("OpenRingWriter of a well-formed file: %v", err)
	} else {
		w.Close()
	}
}

// TestRingsOutOfAddressSpace: under ulimit -v, a ring that does not fit
// fails with the mapping it could not make, on both kinds, and so does a
// plan's edge.
func TestRingsOutOfAddressSpace(t *testing.T) {
	withAddressLimit(t, 256<<20)
	const size = 1 << 30
	if _, _, err := NewMemRing(size); err == nil || err.Error() != "reserve ring mapping: cannot allocate memory" {
		t.Errorf("NewMemRing(1 GiB) = %v, want reserve ring mapping: cannot allocate memory", err)
	}
	f, err := NewRing(size) // the memory is a file: nothing mapped yet but its header, for a moment
	if err != nil {
		t.Fatalf("NewRing(1 GiB): %v", err)
	}
	defer f.Close()
	if _, err := OpenRingWriter(f.Mem, f.WriterSock); err == nil || err.Error() != "reserve ring mapping: cannot allocate memory" {
		t.Errorf("OpenRingWriter of 1 GiB = %v, want reserve ring mapping: cannot allocate memory", err)
	}
}
