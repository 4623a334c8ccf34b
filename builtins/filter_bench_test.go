package builtins

import (
	"bytes"
	"strconv"
	"testing"
)

// discardSink counts what it is given.
type discardSink struct {
	buf []byte
	n   int
}

func (d *discardSink) Reserve(int) ([]byte, error) { return d.buf, nil }
func (d *discardSink) Commit(n int)                { d.n += n }
func (d *discardSink) Close() error                { return nil }
func (d *discardSink) Flush() error                { return nil }
func (d *discardSink) MaxReserve() int             { return len(d.buf) / 2 }

// BenchmarkFilterLiteral filters the lines 1..1000000 for "7", the
// workload of gen -n N | filter 7, in blocks as a ring delivers them.
func BenchmarkFilterLiteral(b *testing.B) {
	var block []byte
	for i := 1; i <= 1000000; i++ {
		block = strconv.AppendInt(block, int64(i), 10)
		block = append(block, '\n')
	}
	m := &matcher{literal: []byte("7")}
	out := &discardSink{buf: make([]byte, 1<<20)}
	b.SetBytes(int64(len(block)))
	for b.Loop() {
		for off := 0; off < len(block); {
			end := min(off+512<<10, len(block))
			for end < len(block) && block[end-1] != '\n' {
				end++
			}
			if err := m.filter(block[off:end], out); err != nil {
				b.Fatal(err)
			}
			off = end
		}
	}
}

// BenchmarkGenNumbers produces the lines 1..1000000, as gen -n does.
func BenchmarkGenNumbers(b *testing.B) {
	out := &discardSink{buf: make([]byte, 1<<20)}
	b.SetBytes(6888897)
	for b.Loop() {
		if err := genNumbers(out, 1000000); err != nil {
			b.Fatal(err)
		}
	}
}

// blockSink hands each committed block straight to a function: no ring, no
// second goroutine. BenchmarkOneLoopGenFilterCount chains the builtins'
// own functions with it, the floor for gen | filter 7 | count.
type blockSink struct {
	buf  []byte
	then func(block []byte) error
	err  error
}

func (s *blockSink) Reserve(int) ([]byte, error) { return s.buf, s.err }
func (s *blockSink) Commit(n int) {
	if s.err == nil && n > 0 {
		s.err = s.then(s.buf[:n])
	}
}
func (s *blockSink) Flush() error    { return nil }
func (s *blockSink) Close() error    { return nil }
func (s *blockSink) MaxReserve() int { return len(s.buf) / 2 }

// BenchmarkOneLoopGenFilterCount is gen -n 1e8 | filter 7 | count in one
// loop on one core, built from the builtins' own functions (gen's
// formatting, filter's matcher, count's newline count) with no transport:
// the floor that gpipe's pipeline of three is measured against.
func BenchmarkOneLoopGenFilterCount(b *testing.B) {
	for b.Loop() {
		var lines int
		count := &blockSink{buf: make([]byte, 1<<20), then: func(p []byte) error {
			lines += bytes.Count(p, []byte{'\n'})
			return nil
		}}
		m := &matcher{literal: []byte("7")}
		filter := &blockSink{buf: make([]byte, genBlock), then: func(p []byte) error { return m.filter(p, count) }}
		if err := genNumbers(filter, 100000000); err != nil {
			b.Fatal(err)
		}
		if lines != 56953279 {
			b.Fatalf("counted %d lines, want 56953279", lines)
		}
	}
}
