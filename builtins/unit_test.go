package builtins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/gpipe/gpipe/plumbing"
)

// These tests run builtins over plumbing's ReaderSource and WriterSink: no
// file, no ring, and readers and writers that read short, fail, or lose
// their reader on cue.

// via is how a test feeds a builtin and takes its output.
type via struct {
	name string
	src  func(io.Reader) plumbing.Source
	sink func(io.Writer) plumbing.Sink
}

var vias = []via{
	{"1 MiB buffers",
		func(r io.Reader) plumbing.Source { return plumbing.NewReaderSource(r) },
		func(w io.Writer) plumbing.Sink { return plumbing.NewWriterSink(w) }},
	// Every line longer than a peek, every output in pieces.
	{"16-byte buffers and 1-byte reads",
		func(r io.Reader) plumbing.Source { return plumbing.NewReaderSourceSize(iotest.OneByteReader(r), 16) },
		func(w io.Writer) plumbing.Sink { return plumbing.NewWriterSinkSize(w, 16) }},
}

// memFiles is a Files in memory: Open reads in, Create writes out (after
// in's content, to append), and the names in fail fail to open, or fail
// on their first read or write.
type memFiles struct {
	via  via
	in   map[string]string
	fail map[string]error // by name: the error of opening it; "read:NAME", "write:NAME": of reading, writing it

	mu    sync.Mutex
	out   map[string]*bytes.Buffer
	stats []OutputStats
}

func newMemFiles(v via, in map[string]string) *memFiles {
	return &memFiles{via: v, in: in, fail: map[string]error{}, out: map[string]*bytes.Buffer{}}
}

func (m *memFiles) Open(name string) (plumbing.Source, error) {
	if err := m.fail[name]; err != nil {
		return nil, err
	}
	data, ok := m.in[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	var r io.Reader = strings.NewReader(data)
	if err := m.fail["read:"+name]; err != nil {
		r = io.MultiReader(r, iotest.ErrReader(err))
	}
	return m.via.src(r), nil
}

func (m *memFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	if err := m.fail[name]; err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := &bytes.Buffer{}
	if appendTo {
		b.WriteString(m.in[name]) // the file as it stands
	}
	m.out[name] = b
	var w io.Writer = b
	if err := m.fail["write:"+name]; err != nil {
		w = &failWriter{err: err}
	}
	return m.via.sink(w), nil
}

func (m *memFiles) ReportOutputs(s []OutputStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats = s
}

// written returns what was written to the files, as "name=content;…" in
// the order of the names.
func (m *memFiles) written() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name := range m.out {
		names = append(names, name)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, name := range names {
		fmt.Fprintf(&sb, "%s=%q;", name, m.out[name].String())
	}
	return sb.String()
}

// failWriter takes ok bytes, then fails with err.
type failWriter struct {
	buf bytes.Buffer
	ok  int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if room := w.ok - w.buf.Len(); room < len(p) {
		w.buf.Write(p[:max(room, 0)])
		return max(room, 0), w.err
	}
	return w.buf.Write(p)
}

// runIO parses args and runs the builtin over input into out, through v.
// The error is the builtin's, or else its output's on Close.
func runIO(t *testing.T, v via, args []string, input io.Reader, out io.Writer, files Files) error {
	t.Helper()
	b, ok := Default()[args[0]]
	if !ok {
		t.Fatalf("no builtin %s", args[0])
	}
	run, err := b.Parse(args[1:])
	if err != nil {
		return err
	}
	in, sink := v.src(input), v.sink(out)
	err = run(in, sink, files)
	in.Close()
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	return err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var errDisk = errors.New("disk on fire")

// TestBuiltinsInMemory: input bytes (and files) to output bytes (and
// files) and error, each way of reading and writing.
func TestBuiltinsInMemory(t *testing.T) {
	long := strings.Repeat("x", 300<<10) // longer than a block of merge's
	tests := []struct {
		name    string
		args    []string
		input   string
		readErr error             // after the input
		files   map[string]string // to read
		fail    map[string]error  // see memFiles
		want    string
		written string // the files, as memFiles.written has them
		err     string
	}{
		// gen
		{name: "gen numbers", args: []string{"gen", "-n", "25"}, want: seq(1, 25)},
		{name: "gen 1e2", args: []string{"gen", "-n", "1e2"}, want: seq(1, 100)},
		{name: "gen 2.5E1", args: []string{"gen", "-n", "2.5E1"}, want: seq(1, 25)},
		{name: "gen text", args: []string{"gen", "--text", "hello world", "-n", "3"}, want: "hello world\nhello world\nhello world\n"},
		{name: "gen empty text", args: []string{"gen", "--text", "", "-n", "2"}, want: "\n\n"},
		{name: "gen zeros", args: []string{"gen", "--bytes", "40"}, want: strings.Repeat("\x00", 40)},
		{name: "gen zero bytes", args: []string{"gen", "--bytes", "0"}, want: ""},
		{name: "gen 1KB", args: []string{"gen", "--bytes", "1KB"}, want: strings.Repeat("\x00", 1000)},
		{name: "gen random", args: []string{"gen", "--bytes", "21", "--seed", "1"}, want: string(random(0, 21, 1))},
		// filter
		{name: "filter literal", args: []string{"filter", "ab"}, input: "xaby\nab\nba\na\nb\nab", want: "xaby\nab\nab\n"},
		{name: "filter literal invert", args: []string{"filter", "-v", "ab"}, input: "xaby\nab\nba\na\nb\nab", want: "ba\na\nb\n"},
		{name: "filter byte", args: []string{"filter", "b"}, input: "abcdefghijk\nxyz\nb\n\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nlast b", want: "abcdefghijk\nb\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nlast b\n"},
		{name: "filter byte invert", args: []string{"filter", "-v", "b"}, input: "abcdefghijk\nxyz\nb\n\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nlast", want: "xyz\n\nlast\n"},
		{name: "filter regexp", args: []string{"filter", "^[0-9]+5$"}, input: seq(1, 40), want: "15\n25\n35\n"},
		{name: "filter regexp invert", args: []string{"filter", "-v", "[2-9]"}, input: seq(1, 12), want: "1\n10\n11\n"},
		{name: "filter regexp none", args: []string{"filter", "z.z"}, input: seq(1, 12), want: ""},
		{name: "filter fixed", args: []string{"filter", "-F", "a+b"}, input: "aab\na+b\n", want: "a+b\n"},
		{name: "filter empty input", args: []string{"filter", "1"}, want: ""},
		{name: "filter long line", args: []string{"filter", "y"}, input: "a\n" + long + "y\nb\n", want: long + "y\n"},
		{name: "filter long last line", args: []string{"filter", "x"}, input: "a\n" + long, want: long + "\n"},
		{name: "filter read error", args: []string{"filter", "1"}, input: "1\n2\n1", readErr: errDisk, want: "1\n", err: "disk on fire"},
		// count, head, cat, sha256, sink
		{name: "count lines", args: []string{"count", "-l"}, input: seq(1, 1000), want: "1000\n"},
		{name: "count bytes", args: []string{"count", "-c"}, input: long, want: fmt.Sprintln(len(long))},
		{name: "count read error", args: []string{"count"}, input: "a\n", readErr: errDisk, err: "disk on fire"},
		{name: "head", args: []string{"head", "-n", "2"}, input: seq(1, 5), want: "1\n2\n"},
		{name: "head -0", args: []string{"head", "-0"}, input: seq(1, 5), want: ""},
		{name: "head -n -0", args: []string{"head", "-n", "-0"}, input: seq(1, 5), want: seq(1, 5)},
		{name: "head -c -0", args: []string{"head", "-c", "-0"}, input: seq(1, 5), want: seq(1, 5)},
		{name: "head -c", args: []string{"head", "-c", "7"}, input: seq(1, 5), want: "1\n2\n3\n4"},
		{name: "head -c 0", args: []string{"head", "-c", "0"}, input: seq(1, 5), want: ""},
		{name: "head -c K", args: []string{"head", "-c", "1K"}, input: long, want: long[:1024]},
		{name: "head short input", args: []string{"head", "-n", "3"}, input: "a\nb", want: "a\nb"},
		{name: "head read error", args: []string{"head", "-n", "3"}, input: "a\n", readErr: errDisk, want: "a\n", err: "disk on fire"},
		{name: "head done before the error", args: []string{"head", "-n", "1"}, input: "a\n", readErr: errDisk, want: "a\n"},
		{name: "cat", args: []string{"cat"}, input: long, want: long},
		{name: "cat read error", args: []string{"cat"}, input: "abc", readErr: errDisk, want: "abc", err: "disk on fire"},
		{name: "sha256", args: []string{"sha256"}, input: "abc", want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"},
		{name: "sha256 read error", args: []string{"sha256"}, input: "abc", readErr: errDisk, err: "disk on fire"},
		{name: "sink", args: []string{"sink"}, input: long, want: ""},
		{name: "sink read error", args: []string{"sink"}, input: "abc", readErr: errDisk, err: "disk on fire"},
		{name: "sink FILE", args: []string{"sink", "f"}, input: "abc\n", written: `f="abc\n";`},
		{name: "sink FILE read error", args: []string{"sink", "f"}, input: "abc\n", readErr: errDisk, written: `f="abc\n";`, err: "disk on fire"},
		{name: "sink FILE cannot create", args: []string{"sink", "f"}, input: "abc\n", fail: map[string]error{"f": errDisk}, err: "disk on fire"},
		{name: "sink FILE write error", args: []string{"sink", "f"}, input: "abc\n", fail: map[string]error{"write:f": errDisk}, written: `f="";`, err: "disk on fire"},
		// merge: one input at a time, for an order that is the input's
		{name: "merge stdin", args: []string{"merge", "-"}, input: "a\nb", want: "a\nb\n"},
		{name: "merge file", args: []string{"merge", "f"}, files: map[string]string{"f": seq(1, 100)}, want: seq(1, 100)},
		{name: "merge long lines", args: []string{"merge", "f"}, files: map[string]string{"f": "a\n" + long + "\nb\n" + long}, want: "a\n" + long + "\nb\n" + long + "\n"},
		{name: "merge empty", args: []string{"merge", "f"}, files: map[string]string{"f": ""}, want: ""},
		{name: "merge missing", args: []string{"merge", "f", "g"}, files: map[string]string{"g": "g\n"}, want: "g\n", err: "open f: file does not exist"},
		{name: "merge read error", args: []string{"merge", "f"}, files: map[string]string{"f": "a\nb"}, fail: map[string]error{"read:f": errDisk}, want: "a\n", err: "disk on fire"},
		{name: "merge -n", args: []string{"merge", "-n", "f", "-", "g"}, input: "in1\nin2", files: map[string]string{"f": "f1\nf2", "g": seq(1, 3)}, want: "f1\nf2\nin1\nin2\n1\n2\n3\n"},
		{name: "merge -n long", args: []string{"merge", "-n", "f", "g"}, files: map[string]string{"f": long, "g": long}, want: long + "\n" + long + "\n"},
		{name: "merge -n empty", args: []string{"merge", "-n", "f", "g"}, files: map[string]string{"f": "", "g": "g\n"}, want: "g\n"},
		{name: "merge -n missing", args: []string{"merge", "-n", "f", "g"}, files: map[string]string{"g": "g\n"}, want: "g\n", err: "open f: file does not exist"},
		{name: "merge -n read error", args: []string{"merge", "-n", "f", "g"}, files: map[string]string{"f": "f1\n", "g": "g\n"}, fail: map[string]error{"read:f": errDisk}, want: "f1\ng\n", err: "input 1: disk on fire"},
		// tee
		{name: "tee", args: []string{"tee", "a", "b"}, input: seq(1, 10), want: seq(1, 10), written: fmt.Sprintf("a=%q;b=%q;", seq(1, 10), seq(1, 10))},
		{name: "tee stdout only", args: []string{"tee"}, input: long, want: long},
		{name: "tee empty", args: []string{"tee", "a"}, want: "", written: `a="";`},
		{name: "tee -a", args: []string{"tee", "-a", "-p", "a", "b"}, input: "new\n", files: map[string]string{"a": "old\n"}, want: "new\n", written: `a="old\nnew\n";b="new\n";`},
		{name: "tee truncates", args: []string{"tee", "a"}, input: "new\n", files: map[string]string{"a": "old\n"}, want: "new\n", written: `a="new\n";`},
		{name: "tee cannot create", args: []string{"tee", "a", "b"}, input: "x\n", fail: map[string]error{"a": errDisk}, want: "x\n", written: `b="x\n";`, err: "a: disk on fire"},
		{name: "tee write error", args: []string{"tee", "a", "b"}, input: "x\n", fail: map[string]error{"write:a": errDisk}, want: "x\n", written: `a="";b="x\n";`, err: "a: disk on fire"},
		{name: "tee reader gone", args: []string{"tee", "a", "b"}, input: "x\n", fail: map[string]error{"write:a": syscall.EPIPE}, want: "x\n", written: `a="";b="x\n";`},
		{name: "tee every reader gone", args: []string{"tee", "a"}, input: "x\n", fail: map[string]error{"write:a": syscall.EPIPE, "write:stdout": syscall.EPIPE}, written: `a="";`, err: "every output: broken pipe"},
		{name: "tee stdout write error", args: []string{"tee", "a"}, input: "x\n", fail: map[string]error{"write:stdout": errDisk}, written: `a="x\n";`, err: "standard output: disk on fire"},
		{name: "tee read error", args: []string{"tee", "a"}, input: "x\n", readErr: errDisk, want: "x\n", written: `a="x\n";`, err: "disk on fire"},
		// split
		{name: "split lines", args: []string{"split", "a", "b", "c"}, input: seq(1, 8), written: `a="1\n4\n7\n";b="2\n5\n8\n";c="3\n6\n";`},
		{name: "split -n", args: []string{"split", "-n", "2", "a", "-"}, input: seq(1, 9), want: "3\n4\n7\n8\n", written: `a="1\n2\n5\n6\n9\n";`},
		{name: "split no final newline", args: []string{"split", "a", "b"}, input: "1\n2\n3", written: `a="1\n3";b="2\n";`},
		{name: "split --bytes", args: []string{"split", "--bytes", "3", "a", "b"}, input: "abcdefghij", written: `a="abcghi";b="defj";`},
		{name: "split long lines", args: []string{"split", "a", "b"}, input: long + "\n" + long + "\n" + long, written: fmt.Sprintf("a=%q;b=%q;", long+"\n"+long, long+"\n")},
		{name: "split cannot create", args: []string{"split", "a", "b"}, input: seq(1, 4), fail: map[string]error{"b": errDisk}, written: `a="1\n3\n";`, err: "b: disk on fire"},
		{name: "split every reader gone", args: []string{"split", "a", "b"}, input: seq(1, 4), fail: map[string]error{"write:a": syscall.EPIPE, "write:b": syscall.EPIPE}, written: `a="";b="";`, err: "every output: broken pipe"},
	}
	for i, v := range vias {
		for _, tt := range tests {
			size := len(tt.input)
			for _, f := range tt.files {
				size += len(f)
			}
			if i > 0 && size > 64<<10 {
				// A byte at a time, a fan-out's or fan-in's blocks hold 16
				// bytes each: seconds for 300 KiB, half a minute under
				// -race. Lines longer than a peek are every line there.
				continue
			}
			t.Run(v.name+"/"+tt.name, func(t *testing.T) {
				files := newMemFiles(v, tt.files)
				for name, err := range tt.fail {
					files.fail[name] = err
				}
				var in io.Reader = strings.NewReader(tt.input)
				if tt.readErr != nil {
					in = io.MultiReader(in, iotest.ErrReader(tt.readErr))
				}
				var out bytes.Buffer
				var w io.Writer = &out
				if err := tt.fail["write:stdout"]; err != nil {
					w = &failWriter{err: err}
				}
				err := runIO(t, v, tt.args, in, w, files)
				if errString(err) != tt.err {
					t.Errorf("error %q, want %q", errString(err), tt.err)
				}
				if got := out.String(); got != tt.want {
					t.Errorf("output %d bytes %q…, want %d bytes %q…", len(got), clip(got), len(tt.want), clip(tt.want))
				}
				if got := files.written(); got != tt.written && len(tt.written) < 200 {
					t.Errorf("files %s, want %s", got, tt.written)
				} else if got != tt.written {
					t.Errorf("files (%d bytes) differ from the %d bytes wanted", len(got), len(tt.written))
				}
			})
		}
	}
}

// random is gen's pseudo-random stream from off, n bytes.
func random(off, n int, seed uint64) []byte {
	b := make([]byte, n)
	fillRandom(b, int64(off), seed)
	return b
}

// TestBuiltinsBrokenOutput: a builtin whose output's reader has gone, or
// whose output fails, after any number of bytes stops with that error,
// having written exactly the bytes before it.
func TestBuiltinsBrokenOutput(t *testing.T) {
	endless := func() io.Reader { return &repeatReader{line: "12345\n"} }
	lines := strings.Repeat("12345\n", 1000)
	tests := []struct {
		args  []string
		input func() io.Reader // nil: none
		out   string           // the output, or enough of it
	}{
		{[]string{"gen"}, nil, seq(1, 2000)},
		{[]string{"gen", "--text", "abc"}, nil, strings.Repeat("abc\n", 2000)},
		{[]string{"gen", "--text", strings.Repeat("l", 40)}, nil, strings.Repeat(strings.Repeat("l", 40)+"\n", 200)},
		{[]string{"gen", "--bytes", "1G"}, nil, strings.Repeat("\x00", 6000)},
		{[]string{"gen", "--bytes", "1G", "--seed", "9"}, nil, string(random(0, 6000, 9))},
		{[]string{"filter", "3"}, endless, lines},
		{[]string{"filter", "-v", "7"}, endless, lines},
		{[]string{"filter", "[3]"}, endless, lines},
		{[]string{"filter", "-v", "[7]"}, endless, lines},
		{[]string{"filter", "34"}, endless, lines},
		{[]string{"cat"}, endless, lines},
		{[]string{"head", "-n", "100000"}, endless, lines},
		{[]string{"head", "-c", "1G"}, endless, lines},
		{[]string{"merge", "-"}, endless, lines},
		{[]string{"merge", "-n", "-"}, endless, lines},
		{[]string{"count"}, func() io.Reader { return strings.NewReader("a\nb\n") }, "2\n"},
		{[]string{"sha256"}, func() io.Reader { return strings.NewReader("") }, sum("")},
		{[]string{"gen", "--help"}, nil, usageOf("gen")},
	}
	for _, v := range vias {
		for _, tt := range tests {
			for _, ok := range []int{0, 1, 100, 5000} {
				for _, fail := range []error{syscall.EPIPE, errDisk} {
					t.Run(fmt.Sprintf("%s/%s/%v after %d bytes", v.name, strings.Join(tt.args, " "), fail, ok), func(t *testing.T) {
						var in io.Reader = strings.NewReader("")
						if tt.input != nil {
							in = tt.input()
						}
						w := &failWriter{ok: ok, err: fail}
						err := runIO(t, v, tt.args, in, w, newMemFiles(v, nil))
						want := tt.out[:min(ok, len(tt.out))]
						switch {
						case len(tt.out) < ok && err != nil:
							t.Errorf("error %v, want none: the whole output fits", err)
						case len(tt.out) >= ok && !errors.Is(err, fail):
							t.Errorf("error %v, want %v", err, fail)
						}
						if got := w.buf.String(); got != want {
							t.Errorf("wrote %d bytes %q…, want %d bytes %q…", len(got), clip(got), len(want), clip(want))
						}
					})
				}
			}
		}
	}
}

// usageOf is a builtin's help.
func usageOf(name string) string {
	var out bytes.Buffer
	sink := plumbing.NewWriterSink(&out)
	if err := Default()[name].Help()(nil, sink, nil); err != nil {
		panic(err)
	}
	sink.Close()
	return out.String()
}

// repeatReader repeats line for ever.
type repeatReader struct {
	line string
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}

func TestMoreUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"gen", "-n", "1.5"}, `gen: invalid value "1.5" for flag -n: want a whole number, such as 1000000 or 1e6`},
		{[]string{"gen", "-n", "1e100"}, `gen: invalid value "1e100" for flag -n: want a whole number, such as 1000000 or 1e6`},
		{[]string{"gen", "-n", "x"}, `gen: invalid value "x" for flag -n: want a whole number, such as 1000000 or 1e6`},
		{[]string{"gen", "--bytes", "-1"}, `gen: --bytes: invalid size "-1" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{[]string{"gen", "--bytes", "9999999999G"}, `gen: --bytes: size "9999999999G" is too large`},
		{[]string{"filter", "a\nb"}, "filter: PATTERN must not contain a newline"},
		{[]string{"filter", "a", "b"}, "filter: want one PATTERN, got 2 arguments"},
		{[]string{"filter", "--x", "a"}, "filter: flag provided but not defined: -x"},
		{[]string{"count", "x"}, `count: unexpected argument "x"`},
		{[]string{"head", "-c", "x"}, `head: -c: invalid size "x" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{[]string{"head", "x"}, `head: unexpected argument "x"`},
		{[]string{"head", "-n", "-5"}, "head: all but the last 5: not supported"},
		{[]string{"head", "-c", "-1K"}, "head: all but the last 1K: not supported"},
		{[]string{"head", "-n", "-x"}, "head: all but the last x: not supported"},
		{[]string{"merge"}, "merge: want at least one INPUT"},
		{[]string{"merge", "--buffer", "1K", "a"}, `merge: --buffer "1K": want a size from 128KiB to 1TiB`},
		{[]string{"merge", "--buffer", "2TiB", "a"}, `merge: --buffer "2TiB": want a size from 128KiB to 1TiB`},
		{[]string{"merge", "-x", "a"}, "merge: flag provided but not defined: -x"},
		{[]string{"tee", "--buffer", "x"}, `tee: --buffer "x": want a size from 128KiB to 1TiB`},
		{[]string{"tee", "-x"}, "tee: flag provided but not defined: -x"},
		{[]string{"split", "-n", "0", "a"}, "split: -n 0: want at least 1 line"},
		{[]string{"split", "--bytes", "0", "a"}, `split: --bytes "0": want a size of at least 1 byte`},
		{[]string{"split", "--bytes", "x", "a"}, `split: --bytes "x": want a size of at least 1 byte`},
		{[]string{"split"}, "split: want at least one OUTPUT"},
		{[]string{"split", "--buffer", "1", "a"}, `split: --buffer "1": want a size from 128KiB to 1TiB`},
		{[]string{"sink", "--x"}, "sink: flag provided but not defined: -x"},
		{[]string{"cat", "-u"}, "cat: flag provided but not defined: -u"},
		{[]string{"sha256", "-x"}, "sha256: flag provided but not defined: -x"},
		{[]string{"count", "-x"}, "count: flag provided but not defined: -x"},
		{[]string{"head", "-x"}, "head: flag provided but not defined: -x"},
	}
	for _, tt := range tests {
		_, err := Default()[tt.args[0]].Parse(tt.args[1:])
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != tt.want || ue.Builtin != tt.args[0] {
			t.Errorf("%q: error %v, want usage error %q", tt.args, err, tt.want)
		}
	}
}

// TestSplitRefusesAnExistingFile: coreutils' split reads its FILE; the
// builtin, which would overwrite it, leaves that to the program.
func TestSplitRefusesAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "input")
	if err := os.WriteFile(path, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Default()["split"].Parse([]string{path})
	want := "split: " + path + ": an existing file is coreutils split's input; the builtin writes its OUTPUTs"
	var ue *UsageError
	if !errors.As(err, &ue) || err.Error() != want {
		t.Errorf("error %v, want usage error %q", err, want)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "x\n" {
		t.Errorf("the file holds %q, %v", b, err)
	}
	if _, err := Default()["split"].Parse([]string{os.DevNull}); err != nil {
		t.Errorf("split %s: %v, want no error: a device is no input file", os.DevNull, err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"17", 17, ""},
		{"1K", 1 << 10, ""},
		{"1KiB", 1 << 10, ""},
		{"1KB", 1000, ""},
		{"3M", 3 << 20, ""},
		{"3MiB", 3 << 20, ""},
		{"3MB", 3e6, ""},
		{"2G", 2 << 30, ""},
		{"2GiB", 2 << 30, ""},
		{"2GB", 2e9, ""},
		{"5T", 5 << 40, ""},
		{"5TiB", 5 << 40, ""},
		{"5TB", 5e12, ""},
		{"4611686018427387904", 1 << 62, ""},
		{"4194304T", 1 << 62, ""},
		{"4194305T", 0, `size "4194305T" is too large`},
		{"", 0, `invalid size "" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{"K", 0, `invalid size "K" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{"-1", 0, `invalid size "-1" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{"1.5K", 0, `invalid size "1.5K" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{"1k", 0, `invalid size "1k" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{" 1", 0, `invalid size " 1" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{"99999999999999999999", 0, `invalid size "99999999999999999999" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("ParseSize(%q) = %d, %q; want %d, %q", tt.in, got, errString(err), tt.want, tt.err)
		}
	}
}

// TestOSFiles: names are files, opened as a program opens them.
func TestOSFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(appendTo bool, text string) {
		t.Helper()
		s, err := OSFiles{}.Create(path, appendTo)
		if err != nil {
			t.Fatal(err)
		}
		if err := plumbing.Write(s, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		s, err := OSFiles{}.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := io.ReadAll(&sourceReader{s})
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	write(false, "one\n")
	write(true, "two\n")
	if got := read(); got != "one\ntwo\n" {
		t.Errorf("after a create and an append: %q", got)
	}
	write(false, "three\n")
	if got := read(); got != "three\n" {
		t.Errorf("after a create that truncates: %q", got)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := (OSFiles{}).Open(missing); errString(err) != "open "+missing+": no such file or directory" {
		t.Errorf("Open of a missing file: %v", err)
	}
	noDir := filepath.Join(dir, "no", "f")
	if _, err := (OSFiles{}).Create(noDir, false); errString(err) != "open "+noDir+": no such file or directory" {
		t.Errorf("Create in a missing directory: %v", err)
	}
}

// sourceReader reads a Source as an io.Reader.
type sourceReader struct{ s plumbing.Source }

func (r *sourceReader) Read(p []byte) (int, error) {
	buf, err := r.s.Peek(1)
	n := copy(p, buf)
	r.s.Release(n)
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// TestUsageNamesValues: a flag's value is named as the synopsis names it,
// VALUE where it does not; a default is shown unless it is a zero.
func TestUsageNamesValues(t *testing.T) {
	b := &Builtin{Name: "x", Synopsis: "x [-k WORD] [--long] [--size SIZE...]", Summary: "Do x."}
	fs, _ := flags(b)
	fs.String("k", "", "a word")
	fs.Bool("long", false, "at length")
	fs.String("size", "1K", "how much")
	fs.Int("z", 0, "not in the synopsis")
	fs.Int("q", 3, "not in the synopsis either")
	want := `usage: x [-k WORD] [--long] [--size SIZE...]
Do x.
  -k WORD      a word
  --long       at length
  -q VALUE     not in the synopsis either (default 3)
  --size SIZE  how much (default 1K)
  -z VALUE     not in the synopsis
`
	if got := usage(b, fs); got != want {
		t.Errorf("usage:\n%s\nwant:\n%s", got, want)
	}
}

// TestSplitDealsWholeUnits: split -n K gives each output K whole lines in
// turn, whatever the lines' lengths (shorter and longer than the chunks
// it counts newlines in, and than its blocks), a last line without a
// newline included: the same bytes as dealing line by line.
func TestSplitDealsWholeUnits(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var in strings.Builder
	var lines []string
	for range 20000 {
		n := rnd.IntN(40)
		if rnd.IntN(100) == 0 {
			n = 512 + rnd.IntN(200000) // past a chunk, and some past a block
		}
		line := strings.Repeat(string(rune('a'+rnd.IntN(26))), n) + "\n"
		lines = append(lines, line)
		in.WriteString(line)
	}
	lines = append(lines, "no newline")
	in.WriteString("no newline")
	for _, k := range []int{1, 7, 1000} {
		dir := t.TempDir()
		outs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
		if _, err := runFiles(t, append([]string{"split", "-n", strconv.Itoa(k)}, outs...), in.String()); err != nil {
			t.Fatalf("split -n %d: %v", k, err)
		}
		want := make([]strings.Builder, len(outs))
		for i, line := range lines {
			want[(i/k)%len(outs)].WriteString(line)
		}
		for i, path := range outs {
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want[i].String() {
				t.Errorf("split -n %d: output %d has %d bytes (sha %s), want %d (sha %s)", k, i+1, len(got), sum(string(got)), want[i].Len(), sum(want[i].String()))
			}
		}
	}
}
