package builtins

import "github.com/gpipe/gpipe/plumbing"

// batch gathers a builtin's output in the space its sink reserved, so that
// the output of a whole input block is committed once, not once per line:
// each commit may wake the reader, and on a ring it publishes the head.
type batch struct {
	out plumbing.Sink
	buf []byte // reserved space; buf[:n] holds output not yet committed
	n   int
}

// write appends p, committing and reserving again when the space is full.
func (b *batch) write(p []byte) error {
	for len(p) > 0 {
		if b.n == len(b.buf) {
			b.commit()
			buf, err := b.out.Reserve(min(len(p), b.out.MaxReserve()))
			if err != nil {
				return err
			}
			b.buf = buf
		}
		c := copy(b.buf[b.n:], p)
		b.n += c
		p = p[c:]
	}
	return nil
}

// commit publishes what was written; the next write reserves anew.
func (b *batch) commit() {
	if b.n > 0 {
		b.out.Commit(b.n)
	}
	b.buf, b.n = nil, 0
}
