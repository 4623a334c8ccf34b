package builtins

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// blockSize is the unit fan-out and fan-in builtins move data in.
const blockSize = 128 << 10

// DefaultBuffer is how much a fan-out output (or a fan-in input waiting
// for its turn) holds in memory before it spills to a temporary file.
const DefaultBuffer = 64 << 20

// block is data shared by the queues that hold it; the last to release it
// puts it back in the pool.
type block struct {
	buf  []byte
	n    int
	refs atomic.Int32
}

var blockPool = sync.Pool{New: func() any { return &block{buf: make([]byte, blockSize)} }}

func newBlock() *block {
	b := blockPool.Get().(*block)
	b.n = 0
	b.refs.Store(1)
	return b
}

func (b *block) data() []byte { return b.buf[:b.n] }

func (b *block) unref() {
	if b.refs.Add(-1) == 0 {
		blockPool.Put(b)
	}
}

// queue is an unbounded first-in first-out byte queue between one producer
// and one consumer that never blocks the producer: up to limit bytes wait
// in memory (blocks shared with other queues), the rest in a temporary
// file that is unlinked as soon as it is made, so that nothing is left on
// disk on any exit path. This is how a fan-out never lets one slow output
// stall the others, and how a diamond whose join reads one side to the end
// first cannot deadlock: dgsh's rule, "programs should never hang".
//
// The queue's lock is shared with its owner (all queues of one builtin
// use one), so that a producer can wait for any consumer to make progress.
type queue struct {
	mu    *sync.Mutex
	cond  *sync.Cond // broadcast on every change
	limit int

	mem      []*block
	memBytes int
	spill    *os.File
	spillR   int64 // next byte to read back
	spillW   int64 // end of the spilled bytes
	closed   bool  // the producer is done: after the queued bytes, EOF
	dropped  bool  // the consumer has gone: pushes are discarded
	spillErr error

	// gated says the producer waits at the limit (a fan-out's waitRoom),
	// so that a push past it is a round's overshoot, kept in memory,
	// unless the producer gave up on the consumer (spillOK): then what
	// does not fit goes to the file. Without gated, it always does.
	gated, spillOK bool

	// peak is the most bytes the queue held at once, and spilled how
	// many went through its file: what --stats reports of each output.
	peak, spilled int64
	// pushed is every byte the producer queued, and starved how long the
	// consumer waited for the producer with nothing to write (--stats).
	pushed  int64
	starved time.Duration

	// taken is when the consumer last took data (or when the queue was
	// made): a consumer that takes nothing for a while is stalled.
	taken time.Time
	// inflight says the consumer holds data it took and has not yet
	// written out: until it has, nothing may reach its output another way.
	inflight bool
}

// quiet reports whether the consumer has written out everything it was
// given: nothing queued, nothing in flight. Call with the lock held.
func (q *queue) quiet() bool { return !q.inflight && q.pending() == 0 }

func newQueue(mu *sync.Mutex, cond *sync.Cond, limit int) *queue {
	return &queue{mu: mu, cond: cond, limit: limit, taken: time.Now()}
}

// pending is the number of bytes queued. Call with the lock held.
func (q *queue) pending() int64 { return int64(q.memBytes) + q.spillW - q.spillR }

// idle reports whether nothing is queued. Call without the lock.
func (q *queue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending() == 0
}

// push queues b's data, taking one reference to b, which the queue gives
// back. Call with the lock held. A queue whose memory is full, or whose
// spilled bytes are not all read back yet (order must hold), appends to its
// file instead.
func (q *queue) push(b *block) {
	b.refs.Add(1)
	if q.dropped || q.spillErr != nil {
		b.unref()
		return
	}
	q.pushed += int64(b.n)
	if q.spillW == q.spillR && (q.memBytes+b.n <= q.limit || q.gated && !q.spillOK) {
		q.mem = append(q.mem, b)
		q.memBytes += b.n
		q.peak = max(q.peak, q.pending())
		q.cond.Broadcast()
		return
	}
	defer b.unref()
	if q.spill == nil {
		f, err := os.CreateTemp("", "gpipe-spill-*")
		if err != nil {
			q.spillErr = err
			q.cond.Broadcast()
			return
		}
		os.Remove(f.Name()) // private, and gone whatever happens next
		q.spill = f
	}
	if _, err := q.spill.WriteAt(b.data(), q.spillW); err != nil {
		q.spillErr = err
	} else {
		q.spillW += int64(b.n)
		q.spilled += int64(b.n)
		q.peak = max(q.peak, q.pending())
	}
	q.cond.Broadcast()
}

// close marks the end of the data. Call with the lock held.
func (q *queue) close() {
	q.closed = true
	q.cond.Broadcast()
}

// drop tells the producer the consumer has gone, and frees what is queued.
// Call with the lock held.
func (q *queue) drop() {
	q.dropped = true
	for _, b := range q.mem {
		b.unref()
	}
	q.mem, q.memBytes = nil, 0
	q.spillR, q.spillW = 0, 0
	q.cond.Broadcast()
}

// next waits for data and hands it to f, outside the lock: a block from
// memory, or bytes read back from the file into scratch. It returns io.EOF
// after the last byte of a closed queue. Call without the lock.
func (q *queue) next(scratch []byte, f func([]byte) error) error {
	q.mu.Lock()
	if len(q.mem) == 0 && q.spillR == q.spillW && !q.closed && q.spillErr == nil {
		since := time.Now()
		for len(q.mem) == 0 && q.spillR == q.spillW && !q.closed && q.spillErr == nil {
			q.cond.Wait()
		}
		q.starved += time.Since(since)
	}
	switch {
	case q.spillErr != nil:
		err := q.spillErr
		q.mu.Unlock()
		return errors.Join(errors.New("spill to a temporary file"), err)
	case len(q.mem) > 0:
		b := q.mem[0]
		q.mem = q.mem[1:]
		q.memBytes -= b.n
		q.taken = time.Now()
		q.inflight = true
		q.cond.Broadcast()
		q.mu.Unlock()
		err := f(b.data())
		b.unref()
		q.landed()
		return err
	case q.spillR < q.spillW:
		at, n := q.spillR, min(int64(len(scratch)), q.spillW-q.spillR)
		q.mu.Unlock()
		got, err := q.spill.ReadAt(scratch[:n], at)
		if err != nil && !(errors.Is(err, io.EOF) && int64(got) == n) {
			return errors.Join(errors.New("read back a temporary file"), err)
		}
		q.mu.Lock()
		q.spillR += n
		q.taken = time.Now()
		if q.spillR == q.spillW {
			// All read back: memory takes over again, the file starts over.
			q.spillR, q.spillW, q.spillOK = 0, 0, false
			_ = q.spill.Truncate(0)
		}
		q.inflight = true
		q.cond.Broadcast()
		q.mu.Unlock()
		err = f(scratch[:n])
		q.landed()
		return err
	}
	q.mu.Unlock()
	return io.EOF
}

// landed marks the data in flight written out.
func (q *queue) landed() {
	q.mu.Lock()
	q.inflight = false
	q.cond.Broadcast()
	q.mu.Unlock()
}

// release frees what the queue holds, its file included.
func (q *queue) release() {
	q.mu.Lock()
	q.drop()
	f := q.spill
	q.spill = nil
	q.mu.Unlock()
	if f != nil {
		f.Close()
	}
}
