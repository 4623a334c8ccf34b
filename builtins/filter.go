package builtins

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
	"regexp"
	"strings"

	"github.com/gpipe/gpipe/plumbing"
)

func filterBuiltin() *Builtin {
	b := &Builtin{
		Name:     "filter",
		Synopsis: "filter [-v] [-F] PATTERN",
		Summary:  "Pass the lines that match PATTERN, an RE2 regular expression (-F: a fixed string; -v: the lines that do not match).",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		invert := fs.Bool("v", false, "pass the lines that do not match")
		fixed := fs.Bool("F", false, "PATTERN is a fixed string, not a regular expression")
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		if fs.NArg() != 1 {
			return nil, usagef(b.Name, "want one PATTERN, got %d arguments", fs.NArg())
		}
		pattern := fs.Arg(0)
		if strings.Contains(pattern, "\n") {
			return nil, usagef(b.Name, "PATTERN must not contain a newline")
		}
		m := &matcher{invert: *invert}
		if *fixed {
			m.literal = []byte(pattern)
		} else {
			re, err := regexp.Compile(pattern)
			if err != nil {
				return nil, usagef(b.Name, "bad PATTERN: %v", err)
			}
			// A pattern with no special characters takes the fast path.
			if prefix, complete := re.LiteralPrefix(); complete {
				m.literal = []byte(prefix)
			} else {
				m.re = re
			}
		}
		return m.run, nil
	}
	return b
}

// matcher selects lines: by a literal substring (fast: one vectorised
// search over many lines at once) or by a regular expression, line by line.
type matcher struct {
	literal []byte         // used when re is nil
	re      *regexp.Regexp // nil for a literal
	invert  bool
}

func (m *matcher) run(in plumbing.Source, out plumbing.Sink, _ Files) error {
	return eachLines(in, func(block []byte) error { return m.filter(block, out) })
}

// filter writes the selected lines of block, which is whole lines, each
// ending in '\n'. Adjacent selected lines go out as one copy, and the
// output of the block is committed once.
func (m *matcher) filter(block []byte, out plumbing.Sink) error {
	if m.re == nil && len(m.literal) == 1 {
		return m.filterByte(block, out)
	}
	bw := batch{out: out}
	defer bw.commit()
	var run struct{ start, end int } // pending selected lines: block[start:end]
	emit := func(s, e int) error {
		if s == run.end && run.end > run.start {
			run.end = e
			return nil
		}
		if err := bw.write(block[run.start:run.end]); err != nil {
			return err
		}
		run.start, run.end = s, e
		return nil
	}
	pos := 0
	for pos < len(block) {
		// Find the next matching line: [ls, le).
		var ls, le int
		if m.re == nil {
			i := bytes.Index(block[pos:], m.literal)
			if i < 0 {
				ls, le = len(block), len(block)
			} else {
				i += pos
				// Lines are short: scan to their ends by hand, which
				// costs less than setting up a vectorised search.
				ls = i
				for ls > pos && block[ls-1] != '\n' {
					ls--
				}
				le = i + len(m.literal) // the match holds no newline
				for block[le] != '\n' { // block ends in one
					le++
				}
				le++
			}
		} else {
			ls = pos
			for ls < len(block) {
				e := ls + bytes.IndexByte(block[ls:], '\n')
				if m.re.Match(block[ls:e]) {
					le = e + 1
					break
				}
				ls = e + 1
			}
			if ls >= len(block) {
				ls, le = len(block), len(block)
			}
		}
		var err error
		if m.invert {
			if ls > pos {
				err = emit(pos, ls)
			}
		} else if le > ls {
			err = emit(ls, le)
		}
		if err != nil {
			return err
		}
		pos = max(le, ls)
		if ls == len(block) {
			break
		}
	}
	return bw.write(block[run.start:run.end])
}

// eachLines calls f with blocks of whole lines from in, in order, each line
// ending in '\n'; a last line without one gets one, as grep and sort give
// it. Lines are looked at in place, except a line longer than in.MaxPeek(),
// which is gathered in memory first.
func eachLines(in plumbing.Source, f func(block []byte) error) error {
	var long []byte // a line longer than a peek, being gathered
	want := 1
	for {
		buf, err := in.Peek(want)
		if err != nil && err != io.EOF {
			return err
		}
		if long != nil {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 && err == nil {
				long = append(long, buf...)
				in.Release(len(buf))
				want = 1
				continue
			}
			if i < 0 {
				i = len(buf) - 1
				long = append(long, buf...)
				long = append(long, '\n')
			} else {
				long = append(long, buf[:i+1]...)
			}
			in.Release(i + 1)
			if ferr := f(long); ferr != nil {
				return ferr
			}
			long = nil
			want = 1
			if err == io.EOF && i+1 >= len(buf) {
				return nil
			}
			continue
		}
		last := bytes.LastIndexByte(buf, '\n')
		if last >= 0 {
			if ferr := f(buf[:last+1]); ferr != nil {
				return ferr
			}
			in.Release(last + 1)
			buf = buf[last+1:]
		}
		switch {
		case err == io.EOF:
			if len(buf) > 0 {
				line := append(append([]byte(nil), buf...), '\n')
				in.Release(len(buf))
				return f(line)
			}
			return nil
		case len(buf) >= in.MaxPeek():
			long = append([]byte(nil), buf...)
			in.Release(len(buf))
			want = 1
		default:
			want = len(buf) + 1 // the partial line, and more
		}
	}
}

// filterByte is filter for a one-byte literal, the commonest pattern. It
// reads the block eight bytes at a time: one word gives the positions of
// its newlines and of its pattern bytes as bit masks, and each newline
// decides its line with a mask test. Adjacent selected lines go out as one
// copy. Where most lines match, this beats a vectorised search restarted
// at every match several times over.
func (m *matcher) filterByte(block []byte, out plumbing.Sink) error {
	c, invert := m.literal[0], m.invert
	bw := batch{out: out}
	defer bw.commit()
	runStart, runEnd := 0, 0         // selected lines not yet written
	start, found := 0, false         // the current line, and whether it holds c
	endLine := func(end int) error { // the line ending at block[end-1]
		if found != invert {
			if start != runEnd {
				if err := bw.write(block[runStart:runEnd]); err != nil {
					return err
				}
				runStart = start
			}
			runEnd = end
		}
		start, found = end, false
		return nil
	}
	const ones = 0x0101010101010101
	nlWord, cWord := uint64(ones*'\n'), ones*uint64(c)
	i := 0
	for ; i+8 <= len(block); i += 8 {
		w := binary.LittleEndian.Uint64(block[i:])
		nl, pat := zeroBytes(w^nlWord), zeroBytes(w^cWord)
		if nl == 0 {
			found = found || pat != 0
			continue
		}
		for nl != 0 {
			bit := bits.TrailingZeros64(nl) // the high bit of a newline byte
			upto := uint64(1)<<bit | (uint64(1)<<bit - 1)
			found = found || pat&upto != 0
			pat &^= upto
			if found != invert {
				if err := endLine(i + bit/8 + 1); err != nil {
					return err
				}
			} else {
				start, found = i+bit/8+1, false
			}
			nl &= nl - 1
		}
		found = pat != 0
	}
	for ; i < len(block); i++ {
		if block[i] == c {
			found = true
		} else if block[i] == '\n' {
			if err := endLine(i + 1); err != nil {
				return err
			}
		}
	}
	return bw.write(block[runStart:runEnd])
}

// zeroBytes returns a mask with the high bit of every byte of w that is
// zero, and no other bit (exact, unlike the shorter borrow trick).
func zeroBytes(w uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	t := (w & low7) + low7
	return ^(t | w | low7)
}
