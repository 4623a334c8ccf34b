package builtins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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

// memFiles is a Files in memory: Open reads in, Create writes out, and
// the names in fail fail to open, or fail on their first write.
type memFiles struct {
	via  via
	in   map[string]string
	fail map[string]error // by name: the error of opening it, or of writing it ("write:NAME")

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
	b := m.out[name]
	if b == nil || !appendTo {
		b = &bytes.Buffer{}
		m.out[name] = b
	}
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
		{name: "tee -a", args: []string{"tee", "-a", "-p", "a"}, input: "new\n", files: map[string]string{}, want: "new\n", written: `a="new\n";`},
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
	for _, v := range vias {
		for _, tt := range tests {
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
