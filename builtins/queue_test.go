package builtins

import (
	"bytes"
	"io"
	"os"
	"sync"
	"testing"
)

// TestQueueSpillKeepsOrder pushes more than the memory limit while the
// consumer is away, then while it reads, and checks every byte comes out
// once and in order, and that the spill file is no name on disk.
func TestQueueSpillKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	q := newQueue(&mu, cond, 3*blockSize)
	var want bytes.Buffer
	push := func(i int) {
		b := newBlock()
		b.n = blockSize - i%7 // blocks of uneven sizes
		for j := range b.n {
			b.buf[j] = byte(i + j)
		}
		want.Write(b.data())
		mu.Lock()
		q.push(b)
		mu.Unlock()
		b.unref()
	}
	for i := range 10 { // 3 in memory, 7 spilled
		push(i)
	}
	if q.spill == nil {
		t.Fatal("10 blocks over a 3-block limit did not spill")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the spill file has a name in TMPDIR: %v", entries)
	}
	var got bytes.Buffer
	scratch := make([]byte, blockSize)
	take := func() error {
		return q.next(scratch, func(p []byte) error { got.Write(p); return nil })
	}
	for range 5 { // the memory blocks and part of the file
		if err := take(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 10; i < 20; i++ { // still to the file, after what is there
		push(i)
	}
	mu.Lock()
	q.close()
	mu.Unlock()
	for {
		err := take()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("got %d bytes, want %d, not the same", got.Len(), want.Len())
	}
	q.release()
}
