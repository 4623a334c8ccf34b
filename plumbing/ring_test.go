package plumbing

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary play a ring peer in another process, for
// the tests where that peer dies.
func TestMain(m *testing.M) {
	switch os.Getenv("GPIPE_RING_HELPER") {
	case "":
		os.Exit(m.Run())
	case "reader-stalls":
		// Map the ring for reading, say so, then never read.
		rd, err := OpenRingReader(os.NewFile(3, "mem"), os.NewFile(4, "sock"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ready")
		time.Sleep(time.Minute)
		rd.Close()
	case "writer-dies":
		// Commit 1000 bytes, reserve more without committing, then die.
		w, err := OpenRingWriter(os.NewFile(3, "mem"), os.NewFile(4, "sock"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		w.Write(bytes.Repeat([]byte("c"), 1000))
		buf, _ := w.Reserve(100)
		copy(buf, bytes.Repeat([]byte("u"), 100))
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	os.Exit(2)
}

const testDeadline = 10 * time.Second

// openRing creates a ring and maps both of its sides in this process.
func openRing(t *testing.T, size int) (*RingWriter, *RingReader) {
	t.Helper()
	f, err := NewRing(size)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := OpenRingWriter(f.Mem, f.WriterSock)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := OpenRingReader(f.Mem, f.ReaderSock)
	if err != nil {
		t.Fatal(err)
	}
	return w, rd
}

// within runs f and fails the test if it does not return within the
// deadline.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(testDeadline):
		t.Fatalf("%s: no progress after %v", what, testDeadline)
	}
}

func oneProc(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

func TestRingSizeRounding(t *testing.T) {
	for _, tt := range []struct{ ask, want int }{{0, 4096}, {1, 4096}, {4096, 4096}, {4097, 8192}, {1 << 20, 1 << 20}} {
		if got := ringCapacity(tt.ask); got != tt.want {
			t.Errorf("ringCapacity(%d) = %d, want %d", tt.ask, got, tt.want)
		}
	}
}

func TestRingIsSealed(t *testing.T) {
	f, err := NewRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Mem.Truncate(1 << 20); err == nil {
		t.Error("growing the ring memory succeeded; want it sealed")
	}
	if err := f.Mem.Truncate(0); err == nil {
		t.Error("shrinking the ring memory succeeded; want it sealed")
	}
}

// TestRingWrapAround sends data through a 4 KiB ring in odd-sized pieces,
// so that writes and reads cross the end of the ring many times, and checks
// every byte.
func TestRingWrapAround(t *testing.T) {
	oneProc(t)
	w, rd := openRing(t, 4096)
	src := make([]byte, 1<<20+13)
	rand.NewChaCha8([32]byte{7}).Read(src)
	go func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for off := 0; off < len(src); {
			n := min(1+rng.IntN(5000), len(src)-off)
			if _, err := w.Write(src[off : off+n]); err != nil {
				panic(err)
			}
			off += n
		}
		w.Close()
	}()
	var got []byte
	within(t, "read", func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for {
			buf, err := rd.Peek(1 + rng.IntN(4096))
			n := min(len(buf), 1+rng.IntN(6000))
			got = append(got, buf[:n]...)
			rd.Release(n)
			if err == io.EOF && n == len(buf) {
				return
			}
			if err != nil && err != io.EOF {
				t.Errorf("Peek: %v", err)
				return
			}
		}
	})
	rd.Close()
	if sha256.Sum256(got) != sha256.Sum256(src) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(src))
	}
}

// TestRingMirror checks that a reservation crossing the end of the ring is
// one contiguous slice, and arrives in order.
func TestRingMirror(t *testing.T) {
	w, rd := openRing(t, 4096)
	defer w.Close()
	defer rd.Close()
	w.Write(make([]byte, 3000))
	buf, _ := rd.Peek(3000)
	rd.Release(len(buf))
	span, err := w.Reserve(2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(span) != 4096 {
		t.Fatalf("Reserve on an empty ring gave %d bytes, want 4096", len(span))
	}
	for i := range span {
		span[i] = byte(i % 251)
	}
	w.Commit(len(span))
	got, err := rd.Peek(2048)
	if err != nil || len(got) != 4096 {
		t.Fatalf("Peek = %d bytes, %v; want 4096", len(got), err)
	}
	for i := range got {
		if got[i] != byte(i%251) {
			t.Fatalf("byte %d = %d, want %d", i, got[i], i%251)
		}
	}
}

// TestRingFullAndEmpty checks that a writer waits on a full ring until the
// reader makes room, and a reader on an empty one until data comes.
func TestRingFullAndEmpty(t *testing.T) {
	oneProc(t)
	w, rd := openRing(t, 4096)
	defer w.Close()
	defer rd.Close()

	buf, err := w.Reserve(1)
	if err != nil || len(buf) != 4096 {
		t.Fatalf("Reserve on an empty ring = %d bytes, %v", len(buf), err)
	}
	w.Commit(4096)

	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("after"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("Write on a full ring returned (%v) before the reader made room", err)
	case <-time.After(50 * time.Millisecond):
	}
	got, _ := rd.Peek(4096)
	rd.Release(len(got))
	within(t, "writer after room", func() {
		if err := <-wrote; err != nil {
			t.Errorf("Write: %v", err)
		}
	})
	got, err = rd.Peek(5)
	if err != nil || string(got) != "after" {
		t.Fatalf("Peek = %q, %v; want after", got, err)
	}
	rd.Release(5)

	read := make(chan string, 1)
	go func() {
		b, _ := rd.Peek(1)
		read <- string(b)
	}()
	select {
	case s := <-read:
		t.Fatalf("Peek on an empty ring returned %q before any write", s)
	case <-time.After(50 * time.Millisecond):
	}
	w.Write([]byte("x"))
	within(t, "reader after data", func() {
		if s := <-read; s != "x" {
			t.Errorf("Peek = %q, want x", s)
		}
	})
}

func TestRingEOF(t *testing.T) {
	w, rd := openRing(t, 4096)
	defer rd.Close()
	w.Write([]byte("0123456789"))
	w.Close()
	buf, err := rd.Peek(1)
	if err != nil || string(buf) != "0123456789" {
		t.Fatalf("Peek = %q, %v; want the 10 bytes", buf, err)
	}
	rd.Release(4)
	buf, err = rd.Peek(100)
	if err != io.EOF || string(buf) != "456789" {
		t.Fatalf("Peek past the end = %q, %v; want 456789, EOF", buf, err)
	}
	rd.Release(len(buf))
	buf, err = rd.Peek(1)
	if err != io.EOF || len(buf) != 0 {
		t.Fatalf("Peek at the end = %q, %v; want nothing, EOF", buf, err)
	}
}

func TestRingReaderCloseIsBrokenPipe(t *testing.T) {
	w, rd := openRing(t, 4096)
	defer w.Close()
	w.Write(make([]byte, 4096))
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("more"))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	rd.Close()
	within(t, "writer after reader close", func() {
		if err := <-errc; !errors.Is(err, syscall.EPIPE) {
			t.Errorf("Write after the reader closed: %v, want EPIPE", err)
		}
	})
}

// startPeer runs this test binary as a ring peer process holding mem and
// sock, and returns once it has started.
func startPeer(t *testing.T, role string, mem, sock *os.File) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GPIPE_RING_HELPER="+role)
	cmd.ExtraFiles = []*os.File{mem, sock}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// TestRingReaderDeathWakesWriter kills a reading process with SIGKILL
// while the writer waits on a full ring: the writer must fail with EPIPE at
// once, not after a timeout.
func TestRingReaderDeathWakesWriter(t *testing.T) {
	f, err := NewRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	peer, out := startPeer(t, "reader-stalls", f.Mem, f.ReaderSock)
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("reader helper said %q, %v", line, err)
	}
	f.ReaderSock.Close() // only the helper holds the reader's end now
	w, err := OpenRingWriter(f.Mem, f.WriterSock)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 3*4096))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the writer fill the ring and wait
	start := time.Now()
	peer.Process.Signal(syscall.SIGKILL)
	within(t, "writer after reader death", func() {
		if err := <-errc; !errors.Is(err, syscall.EPIPE) {
			t.Errorf("Write after the reader died: %v, want EPIPE", err)
		}
	})
	t.Logf("writer woke %v after SIGKILL", time.Since(start))
}

// TestRingWriterDeath: a writer killed mid-stream leaves the reader its
// committed bytes, nothing uncommitted, then ErrWriterDied.
func TestRingWriterDeath(t *testing.T) {
	f, err := NewRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	peer, _ := startPeer(t, "writer-dies", f.Mem, f.WriterSock)
	f.WriterSock.Close()
	rd, err := OpenRingReader(f.Mem, f.ReaderSock)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []byte
	within(t, "reader after writer death", func() {
		for {
			buf, err := rd.Peek(1)
			got = append(got, buf...)
			rd.Release(len(buf))
			if err != nil {
				if !errors.Is(err, ErrWriterDied) {
					t.Errorf("Peek: %v, want ErrWriterDied", err)
				}
				return
			}
		}
	})
	peer.Wait()
	if !bytes.Equal(got, bytes.Repeat([]byte("c"), 1000)) {
		t.Errorf("reader got %d bytes (%q…), want the 1000 committed ones", len(got), got[:min(len(got), 20)])
	}
}

// TestRingManyShortRuns runs 10,000 short transfers on one P, each with a
// fresh ring, to catch lost wake-ups: any stall fails the deadline.
func TestRingManyShortRuns(t *testing.T) {
	oneProc(t)
	runs := 10000
	if testing.Short() {
		runs = 1000
	}
	within(t, "short runs", func() {
		for i := range runs {
			f, err := NewRing(4096)
			if err != nil {
				t.Error(err)
				return
			}
			w, err1 := OpenRingWriter(f.Mem, f.WriterSock)
			rd, err2 := OpenRingReader(f.Mem, f.ReaderSock)
			f.Close()
			if err1 != nil || err2 != nil {
				t.Error(err1, err2)
				return
			}
			n := i % 9000 // up to two ring-fulls
			go func() {
				w.Write(bytes.Repeat([]byte{byte(i)}, n))
				w.Close()
			}()
			got, err := io.ReadAll(rd)
			rd.Close()
			if err != nil || len(got) != n || (n > 0 && got[n-1] != byte(i)) {
				t.Errorf("run %d: read %d bytes, %v; want %d", i, len(got), err, n)
				return
			}
		}
	})
}
