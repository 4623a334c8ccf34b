package builtins

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gpipe/gpipe/plumbing"
)

func genBuiltin() *Builtin {
	b := &Builtin{
		Name:     "gen",
		Synopsis: "gen [-n N] [--text STR] | gen --bytes SIZE [--seed S]",
		Summary:  "Generate lines 1..N (like seq N), STR N times, or SIZE bytes (zeros, or pseudo-random with a seed); endless without -n or --bytes.",
		NoInput:  true,
	}
	b.Parse = func(args []string) (Run, error) {
		o, help, err := parseGen(b, args)
		if help != nil || err != nil {
			return help, err
		}
		switch {
		case o.bytes && o.seeded:
			return func(_ plumbing.Source, out plumbing.Sink, _ Files) error { return genRandom(out, o.total, o.seed) }, nil
		case o.bytes:
			return func(_ plumbing.Source, out plumbing.Sink, _ Files) error { return genZeros(out, o.total) }, nil
		case o.text != nil:
			return func(_ plumbing.Source, out plumbing.Sink, _ Files) error { return genText(out, *o.text, o.count) }, nil
		}
		return func(_ plumbing.Source, out plumbing.Sink, _ Files) error { return genNumbers(out, o.count) }, nil
	}
	b.Size = func(args []string, _ int64) int64 {
		o, help, err := parseGen(b, args)
		switch {
		case help != nil || err != nil:
			return -1
		case o.bytes:
			return o.total
		case o.text != nil && o.count < math.MaxInt64:
			if n := int64(len(*o.text)) + 1; o.count <= math.MaxInt64/n {
				return o.count * n
			}
		}
		return -1
	}
	return b
}

// genOptions are gen's arguments, parsed.
type genOptions struct {
	bytes, seeded bool
	total         int64   // with bytes
	seed          uint64  // with seeded
	text          *string // --text, if given
	count         int64   // lines; math.MaxInt64 without -n
}

// parseGen parses gen's arguments (help is --help's Run).
func parseGen(b *Builtin, args []string) (o genOptions, help Run, err error) {
	fs, parse := flags(b)
	n := new(int64)
	fs.Var((*lineCount)(n), "n", "number of lines, 1000000 or 1e6 (endless without -n)")
	text := fs.String("text", "", "repeat this text, one per line, instead of numbers")
	size := fs.String("bytes", "", "generate this many bytes: 100, 4K, 1MiB, 2G …")
	seed := fs.Uint64("seed", 0, "with --bytes: a pseudo-random stream from this seed, instead of zeros")
	if help, err := parse(args); help != nil || err != nil {
		return o, help, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return o, nil, usagef(b.Name, "unexpected argument %q", fs.Arg(0))
	}
	if set["n"] && *n < 0 {
		return o, nil, usagef(b.Name, "-n must not be negative")
	}
	if set["bytes"] {
		if set["n"] || set["text"] {
			return o, nil, usagef(b.Name, "--bytes does not go with -n or --text")
		}
		total, err := ParseSize(*size)
		if err != nil {
			return o, nil, usagef(b.Name, "--bytes: %v", err)
		}
		return genOptions{bytes: true, total: total, seeded: set["seed"], seed: *seed}, nil, nil
	}
	if set["seed"] {
		return o, nil, usagef(b.Name, "--seed goes with --bytes")
	}
	o.count = *n
	if !set["n"] {
		o.count = math.MaxInt64 // endless, for all practical purposes
	}
	if set["text"] {
		o.text = text
	}
	return o, nil, nil
}

// genZeros writes total zero bytes.
func genZeros(out plumbing.Sink, total int64) error {
	for total > 0 {
		buf, err := out.Reserve(1)
		if err != nil {
			return err
		}
		n := int(min(int64(len(buf)), total))
		clear(buf[:n])
		out.Commit(n)
		total -= int64(n)
	}
	return nil
}

// genRandom writes total bytes of a stream fixed by seed: the same seed
// gives the same bytes whatever the transport and the batch sizes, as the
// stream is a function of the byte offset (splitmix64 of the 8-byte block
// index).
func genRandom(out plumbing.Sink, total int64, seed uint64) error {
	var off int64
	for off < total {
		buf, err := out.Reserve(8)
		if err != nil {
			return err
		}
		n := int(min(int64(len(buf)), total-off))
		fillRandom(buf[:n], off, seed)
		out.Commit(n)
		off += int64(n)
	}
	return nil
}

// fillRandom fills buf with the stream's bytes from offset off.
func fillRandom(buf []byte, off int64, seed uint64) {
	var block [8]byte
	i := 0
	if r := int(off % 8); r != 0 { // finish the block off starts in
		binary.LittleEndian.PutUint64(block[:], splitmix(seed, uint64(off/8)))
		i = copy(buf, block[r:])
	}
	idx := uint64((off + int64(i)) / 8)
	for ; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], splitmix(seed, idx))
		idx++
	}
	if i < len(buf) {
		binary.LittleEndian.PutUint64(block[:], splitmix(seed, idx))
		copy(buf[i:], block[:])
	}
}

func splitmix(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// genBlock is how much gen formats in private memory before copying it
// out: stores into a ring whose lines the reader's core holds cost far
// more than stores into memory of gen's own and one copy.
const genBlock = 64 << 10

// genNumbers writes the lines 1..count. The current number is kept as
// ASCII digits and incremented in place, so a line costs a short copy.
func genNumbers(out plumbing.Sink, count int64) error {
	var digits [24]byte // right-aligned, followed by '\n'
	digits[len(digits)-1] = '\n'
	start := len(digits) - 2
	digits[start] = '1'
	buf := make([]byte, genBlock)
	for i := int64(0); i < count; {
		w := 0
		for i < count && len(buf)-w >= len(digits) {
			line := digits[start:]
			if n := len(line); n >= 8 && digits[len(digits)-2] == '0' && count-i >= 10 && len(buf)-w >= 10*n {
				// A whole decade: the ten lines differ in the last digit
				// only, and each is two overlapping 8-byte stores.
				lo := binary.LittleEndian.Uint64(line)
				hi := binary.LittleEndian.Uint64(line[n-8:]) // last digit at byte 6
				for d := range uint64(10) {
					binary.LittleEndian.PutUint64(buf[w:], lo)
					binary.LittleEndian.PutUint64(buf[w+n-8:], hi+d<<48)
					w += n
				}
				i += 10
				digits[len(digits)-2] = '9' // the increment below carries
			} else {
				w += copy(buf[w:], line)
				i++
			}
			// Increment the ASCII number.
			j := len(digits) - 2
			for ; j >= start && digits[j] == '9'; j-- {
				digits[j] = '0'
			}
			if j < start {
				start--
				digits[start] = '1'
			} else {
				digits[j]++
			}
		}
		if err := plumbing.Write(out, buf[:w]); err != nil {
			return err
		}
	}
	return nil
}

// genText writes text and a newline count times.
func genText(out plumbing.Sink, text string, count int64) error {
	line := []byte(text + "\n")
	for i := int64(0); i < count; {
		buf, err := out.Reserve(len(line))
		if err != nil {
			return err
		}
		if len(line) > len(buf) { // a line longer than a reservation
			if err := plumbing.Write(out, line); err != nil {
				return err
			}
			i++
			continue
		}
		w := 0
		for i < count && len(buf)-w >= len(line) {
			w += copy(buf[w:], line)
			i++
		}
		out.Commit(w)
	}
	return nil
}

// lineCount is gen's -n: a whole number, written out or in exponent form
// ("1e7", "2.5e6"), as people write large counts.
type lineCount int64

func (c *lineCount) String() string { return strconv.FormatInt(int64(*c), 10) }

func (c *lineCount) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*c = lineCount(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !strings.ContainsAny(s, "eE") || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		return fmt.Errorf("want a whole number, such as 1000000 or 1e6")
	}
	*c = lineCount(f)
	return nil
}
