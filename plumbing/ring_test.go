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

// stepDeadline bounds every single wait in these tests: it catches a hang
// (a lost wake-up), it does not measure speed.
const stepDeadline = 10 * time.Second

// ringKinds are the two kinds of ring; every protocol test runs on both.
var ringKinds = []string{"mem", "shm"}

// openRing creates a ring of the given kind and returns both of its sides.
func openRing(t *testing.T, kind string, size int) (*RingWriter, *RingReader) {
	t.Helper()
	if kind == "mem" {
		w, rd, err := NewMemRing(size)
		if err != nil {
			t.Fatal(err)
		}
		return w, rd
	}
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

// forKinds runs f as a subtest for each kind of ring.
func forKinds(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range ringKinds {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

// within runs f and fails the test if it does not return within the
// step deadline.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(stepDeadline):
		t.Fatalf("%s: no progress after %v", what, stepDeadline)
	}
}

// waitUntil polls cond until it holds, failing the test after the step
// deadline: how a test knows that a side is asleep before it acts.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(stepDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, stepDeadline)
		}
		time.Sleep(time.Millisecond)
	}
}

func oneProc(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

func TestRingSizeRounding(t *testing.T) {
	for _, tt := range []struct{ ask, want int }{{0, 4096}, {1, 4096}, {4096, 4096}, {4097, 8192}, {1 << 20, 1 << 20}, {1 << 40, 1 << 30}} {
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
	forKinds(t, func(t *testing.T, kind string) {
		oneProc(t)
		w, rd := openRing(t, kind, 4096)
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
				if rng.IntN(4) == 0 {
					w.Flush()
				}
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
	})
}

// TestRingMirror checks that a reservation crossing the end of the ring is
// one contiguous slice, and arrives in order.
func TestRingMirror(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		defer rd.Close()
		w.Write(make([]byte, 3000))
		for n := 0; n < 3000; {
			buf, _ := rd.Peek(1)
			rd.Release(len(buf))
			n += len(buf)
		}
		span, err := w.Reserve(2048)
		if err != nil {
			t.Fatal(err)
		}
		// 3000 is the start: the span runs past the end at 4096.
		if len(span) < 2048 {
			t.Fatalf("Reserve(2048) on an empty ring gave %d bytes", len(span))
		}
		for i := range span {
			span[i] = byte(i % 251)
		}
		w.Commit(len(span))
		got, err := rd.Peek(2048)
		if err != nil || len(got) != len(span) {
			t.Fatalf("Peek = %d bytes, %v; want %d", len(got), err, len(span))
		}
		for i := range got {
			if got[i] != byte(i%251) {
				t.Fatalf("byte %d = %d, want %d", i, got[i], i%251)
			}
		}
	})
}

// TestRingBoundedSteps checks the hand-over in steps: a Reserve or Peek
// offers at most a step (an eighth of the ring) beyond what it asked for.
func TestRingBoundedSteps(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 1<<16)
		defer w.Close()
		defer rd.Close()
		step := (1 << 16) / 8
		buf, err := w.Reserve(1)
		if err != nil || len(buf) != 1+step {
			t.Fatalf("Reserve(1) = %d bytes, %v; want %d", len(buf), err, 1+step)
		}
		w.Commit(len(buf))
		buf, _ = w.Reserve(100)
		w.Commit(len(buf))
		got, err := rd.Peek(10)
		if err != nil || len(got) != 10+step {
			t.Fatalf("Peek(10) = %d bytes, %v; want %d", len(got), err, 10+step)
		}
	})
}

// TestRingWakesAfterAStep: a reader waiting for input is not woken by each
// small commit (its waiting word stays set), but once a step is there, or
// when the writer flushes.
func TestRingWakesAfterAStep(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096) // step 512
		defer w.Close()
		defer rd.Close()
		got := make(chan int, 1)
		peek := func() {
			go func() {
				buf, _ := rd.Peek(1)
				got <- len(buf)
			}()
			waitUntil(t, "reader asleep", func() bool { return rd.r.readerWaiting.Load() != 0 })
		}
		peek()
		w.Write([]byte("x"))
		if rd.r.readerWaiting.Load() == 0 {
			t.Fatal("a 1-byte commit woke a reader waiting for a step")
		}
		w.Flush()
		within(t, "reader after Flush", func() {
			if n := <-got; n != 1 {
				t.Errorf("Peek after Flush = %d bytes, want 1", n)
			}
		})
		rd.Release(1)
		peek()
		w.Write(make([]byte, 511))
		if rd.r.readerWaiting.Load() == 0 {
			t.Fatal("511 bytes woke a reader waiting for a step of 512")
		}
		w.Write([]byte("y"))
		within(t, "reader after a step", func() {
			if n := <-got; n != 512 {
				t.Errorf("Peek after a step = %d bytes, want 512", n)
			}
		})
	})
}

// TestRingFullAndEmpty checks that a writer waits on a full ring until the
// reader makes room, and a reader on an empty one until data comes.
func TestRingFullAndEmpty(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		defer rd.Close()

		w.Write(make([]byte, 4096))
		wrote := make(chan error, 1)
		go func() {
			_, err := w.Write([]byte("after"))
			wrote <- err
		}()
		waitUntil(t, "writer asleep on a full ring", func() bool { return rd.r.writerWaiting.Load() != 0 })
		select {
		case err := <-wrote:
			t.Fatalf("Write on a full ring returned (%v) before the reader made room", err)
		default:
		}
		for n := 0; n < 4096; { // exactly the first 4096: "after" may follow
			got, _ := rd.Peek(1)
			k := min(len(got), 4096-n)
			rd.Release(k)
			n += k
		}
		within(t, "writer after room", func() {
			if err := <-wrote; err != nil {
				t.Errorf("Write: %v", err)
			}
		})
		within(t, "reader after the write", func() {
			got, err := rd.Peek(5)
			if err != nil || string(got) != "after" {
				t.Errorf("Peek = %q, %v; want after", got, err)
			}
		})
		rd.Release(5)

		read := make(chan string, 1)
		go func() {
			b, _ := rd.Peek(1)
			read <- string(b)
		}()
		waitUntil(t, "reader asleep on an empty ring", func() bool { return rd.r.readerWaiting.Load() != 0 })
		w.Write([]byte("x"))
		w.Flush()
		within(t, "reader after data", func() {
			if s := <-read; s != "x" {
				t.Errorf("Peek = %q, want x", s)
			}
		})
	})
}

func TestRingEOF(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
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
	})
}

func TestRingReaderCloseIsBrokenPipe(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		w.Write(make([]byte, 4096))
		errc := make(chan error, 1)
		go func() {
			_, err := w.Write([]byte("more"))
			errc <- err
		}()
		waitUntil(t, "writer asleep on a full ring", func() bool { return rd.r.writerWaiting.Load() != 0 })
		rd.Close()
		within(t, "writer after reader close", func() {
			if err := <-errc; !errors.Is(err, syscall.EPIPE) {
				t.Errorf("Write after the reader closed: %v, want EPIPE", err)
			}
		})
	})
}

// TestRingAfterClose: every entry point of a closed side fails or does
// nothing; none touches the released memory.
func TestRingAfterClose(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		w.Close()
		rd.Close()
		if _, err := rd.Peek(1); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Peek after Close: %v, want os.ErrClosed", err)
		}
		if _, err := rd.Read(make([]byte, 4)); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read after Close: %v, want os.ErrClosed", err)
		}
		if _, err := w.Reserve(1); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Reserve after Close: %v, want os.ErrClosed", err)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Write after Close: %v, want os.ErrClosed", err)
		}
		rd.Release(1)
		w.Commit(1)
		w.Flush()
		if err := errors.Join(w.Close(), rd.Close()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// TestRingMisuse: committing or releasing more than offered is the
// caller's bug and panics in the caller, and an index of the peer's that is
// out of bounds is an error, not a crash.
func TestRingMisuse(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		defer rd.Close()
		mustPanic := func(what string, f func()) {
			t.Helper()
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", what)
				}
			}()
			f()
		}
		buf, _ := w.Reserve(10)
		mustPanic("Commit beyond the reservation", func() { w.Commit(len(buf) + 1) })
		w.Commit(10)
		got, _ := rd.Peek(10)
		mustPanic("Release beyond the peek", func() { rd.Release(len(got) + 1) })

		w.r.head.Store(1 << 40) // the writer's index, as a broken peer could leave it
		if _, err := rd.Peek(1); !errors.Is(err, ErrRingCorrupt) {
			t.Errorf("Peek with the head out of bounds: %v, want ErrRingCorrupt", err)
		}
		w.r.head.Store(10)
		rd.r.tail.Store(1 << 40)
		if _, err := w.Reserve(1); !errors.Is(err, ErrRingCorrupt) {
			t.Errorf("Reserve with the tail out of bounds: %v, want ErrRingCorrupt", err)
		}
	})
}

// TestRingStop: a Stop ends a wait on either side, and fails every later
// call.
func TestRingStop(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		defer rd.Close()
		stop := NewStop()
		rd.SetStop(stop)
		w.SetStop(stop)
		errc := make(chan error, 1)
		go func() {
			_, err := rd.Peek(1)
			errc <- err
		}()
		waitUntil(t, "reader asleep", func() bool { return rd.r.readerWaiting.Load() != 0 })
		stop.Close()
		within(t, "reader after stop", func() {
			if err := <-errc; !errors.Is(err, ErrStopped) {
				t.Errorf("Peek after stop: %v, want ErrStopped", err)
			}
		})
		if _, err := w.Reserve(1); !errors.Is(err, ErrStopped) {
			t.Errorf("Reserve after stop: %v, want ErrStopped", err)
		}
	})
}

// TestMemRingAbandon: a writer goroutine that is abandoned (its builtin
// panicked) leaves the reader its committed bytes, then ErrWriterDied.
func TestMemRingAbandon(t *testing.T) {
	w, rd := openRing(t, "mem", 4096)
	defer rd.Close()
	w.Write([]byte("kept"))
	buf, _ := w.Reserve(4)
	copy(buf, "lost")
	go func() {
		waitUntil(t, "reader asleep", func() bool { return rd.r.readerWaiting.Load() != 0 })
		w.Abandon()
	}()
	var got []byte
	within(t, "reader after abandon", func() {
		for {
			buf, err := rd.Peek(5)
			if err != nil {
				got = append(got, buf...)
				if !errors.Is(err, ErrWriterDied) {
					t.Errorf("Peek: %v, want ErrWriterDied", err)
				}
				return
			}
		}
	})
	if string(got) != "kept" {
		t.Errorf("reader got %q, want kept", got)
	}
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
	waitUntil(t, "writer asleep on a full ring", func() bool { return w.r.writerWaiting.Load() != 0 })
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
// fresh ring, to catch lost wake-ups: a run that makes no progress within
// the step deadline fails; how long all of them take is not tested.
func TestRingManyShortRuns(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		oneProc(t)
		runs := 10000
		if testing.Short() || raceEnabled {
			runs = 2000
		}
		for i := range runs {
			w, rd := openRing(t, kind, 4096)
			n := i % 9000 // up to two ring-fulls
			go func() {
				w.Write(bytes.Repeat([]byte{byte(i)}, n))
				w.Close()
			}()
			var got []byte
			var err error
			within(t, fmt.Sprintf("run %d", i), func() { got, err = io.ReadAll(rd) })
			rd.Close()
			if err != nil || len(got) != n || (n > 0 && got[n-1] != byte(i)) {
				t.Fatalf("run %d: read %d bytes, %v; want %d", i, len(got), err, n)
			}
		}
	})
}

// TestRingDeadline: a wait with a deadline ends with
// os.ErrDeadlineExceeded, on both sides; a later Peek with data succeeds.
func TestRingDeadline(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		w, rd := openRing(t, kind, 4096)
		defer w.Close()
		defer rd.Close()
		rd.SetDeadline(time.Now().Add(20 * time.Millisecond))
		within(t, "Peek with a deadline", func() {
			if _, err := rd.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Peek on an empty ring: %v, want os.ErrDeadlineExceeded", err)
			}
		})
		w.Write(make([]byte, 4096))
		w.SetDeadline(time.Now().Add(20 * time.Millisecond))
		within(t, "Reserve with a deadline", func() {
			if _, err := w.Reserve(1); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Reserve on a full ring: %v, want os.ErrDeadlineExceeded", err)
			}
		})
		rd.SetDeadline(time.Time{})
		if buf, err := rd.Peek(1); err != nil || len(buf) == 0 {
			t.Errorf("Peek with data = %d bytes, %v", len(buf), err)
		}
	})
}

// TestWaitAny: one wait watches several rings and returns the one that has
// something: a flushed line, then an end, and it honours stop and deadline.
func TestWaitAny(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		var ws []*RingWriter
		var rds []*RingReader
		for range 3 {
			w, rd := openRing(t, kind, 4096)
			defer w.Close()
			defer rd.Close()
			ws, rds = append(ws, w), append(rds, rd)
		}
		if _, err := WaitAny(rds, nil, time.Now().Add(20*time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("WaitAny on empty rings: %v, want os.ErrDeadlineExceeded", err)
		}
		got := make(chan int, 1)
		wait := func() {
			go func() {
				i, err := WaitAny(rds, nil, time.Time{})
				if err != nil {
					t.Errorf("WaitAny: %v", err)
				}
				got <- i
			}()
			waitUntil(t, "WaitAny asleep", func() bool { return rds[0].r.readerWaiting.Load() != 0 && rds[2].r.readerWaiting.Load() != 0 })
		}
		wait()
		ws[1].Write([]byte("line\n"))
		ws[1].Flush()
		within(t, "WaitAny after a flush", func() {
			if i := <-got; i != 1 {
				t.Errorf("WaitAny = %d, want 1", i)
			}
		})
		buf, err := rds[1].Peek(1)
		if err != nil || string(buf) != "line\n" {
			t.Fatalf("Peek after WaitAny = %q, %v", buf, err)
		}
		rds[1].Release(len(buf))
		wait()
		ws[2].Close()
		within(t, "WaitAny after a close", func() {
			if i := <-got; i != 2 {
				t.Errorf("WaitAny = %d, want 2", i)
			}
		})
		stop := NewStop()
		stop.Close()
		if _, err := WaitAny(rds[:2], stop, time.Time{}); !errors.Is(err, ErrStopped) {
			t.Errorf("WaitAny after stop: %v, want ErrStopped", err)
		}
	})
	mw, mr := openRing(t, "mem", 4096)
	sw, sr := openRing(t, "shm", 4096)
	defer mw.Close()
	defer mr.Close()
	defer sw.Close()
	defer sr.Close()
	if _, err := WaitAny([]*RingReader{mr, sr}, nil, time.Time{}); !errors.Is(err, ErrMixedRings) {
		t.Errorf("WaitAny on both kinds: %v, want ErrMixedRings", err)
	}
}
