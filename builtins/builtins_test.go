package builtins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gpipe/gpipe/plumbing"
)

// runFiles runs a builtin over a file holding input, into a file, and
// returns what it wrote.
func runFiles(t *testing.T, args []string, input string) (string, error) {
	t.Helper()
	b := Default()[args[0]]
	run, err := b.Parse(args[1:])
	if err != nil {
		return "", err
	}
	return runStage(t, run, input)
}

// runStage runs a parsed builtin over input, and returns what it wrote.
func runStage(t *testing.T, run Run, input string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(inPath, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	inF, err := os.Open(inPath)
	if err != nil {
		t.Fatal(err)
	}
	outF, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	in, out := plumbing.NewFileSource(inF), plumbing.NewFileSink(outF)
	runErr := run(in, out, OSFiles{})
	in.Close()
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(got), runErr
}

// runRings runs a builtin between two 4 KiB rings in this process: a
// goroutine feeds the input ring, another drains the output ring.
func runRings(t *testing.T, args []string, input string) (string, error) {
	t.Helper()
	run, err := Default()[args[0]].Parse(args[1:])
	if err != nil {
		return "", err
	}
	inW, inR := ringPair(t)
	outW, outR := ringPair(t)
	go func() {
		inW.Write([]byte(input))
		inW.Close()
	}()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(outR)
		outR.Close()
		got <- b
	}()
	runErr := run(inR, outW, OSFiles{})
	inR.Close()
	outW.Close()
	return string(<-got), runErr
}

func ringPair(t *testing.T) (*plumbing.RingWriter, *plumbing.RingReader) {
	t.Helper()
	f, err := plumbing.NewRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := plumbing.OpenRingWriter(f.Mem, f.WriterSock)
	if err != nil {
		t.Fatal(err)
	}
	r, err := plumbing.OpenRingReader(f.Mem, f.ReaderSock)
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

func seq(from, to int) string {
	var sb strings.Builder
	for i := from; i <= to; i++ {
		sb.WriteString(strconv.Itoa(i) + "\n")
	}
	return sb.String()
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:]) + "\n"
}

func TestBuiltins(t *testing.T) {
	long := strings.Repeat("x", 5000) + "7\n" // longer than half a 4 KiB ring
	tests := []struct {
		name  string
		args  []string
		input string
		want  string
	}{
		{"gen lines", []string{"gen", "-n", "12"}, "", seq(1, 12)},
		{"gen zero lines", []string{"gen", "-n", "0"}, "", ""},
		{"gen carries", []string{"gen", "-n", "1001"}, "", seq(1, 1001)},
		{"gen decades of 7 digits", []string{"gen", "-n", "1000125"}, "", seq(1, 1000125)},
		{"gen text", []string{"gen", "--text", "ab", "-n", "3"}, "", "ab\nab\nab\n"},
		{"gen long text", []string{"gen", "--text", strings.Repeat("y", 3000), "-n", "2"}, "", strings.Repeat(strings.Repeat("y", 3000)+"\n", 2)},
		{"gen zeros", []string{"gen", "--bytes", "5000"}, "", strings.Repeat("\x00", 5000)},
		{"gen size suffix", []string{"gen", "--bytes", "2K"}, "", strings.Repeat("\x00", 2048)},
		{"filter literal", []string{"filter", "7"}, seq(1, 30), "7\n17\n27\n"},
		{"filter invert", []string{"filter", "-v", "1"}, seq(1, 12), "2\n3\n4\n5\n6\n7\n8\n9\n"},
		{"filter regexp", []string{"filter", "^1.$"}, seq(1, 25), "10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n"},
		{"filter fixed dot", []string{"filter", "-F", "."}, "a.b\nab\n", "a.b\n"},
		{"filter regexp invert", []string{"filter", "-v", "^[0-9]$"}, seq(1, 12), "10\n11\n12\n"},
		{"filter no final newline", []string{"filter", "b"}, "a\nb", "b\n"},
		{"filter empty pattern", []string{"filter", ""}, "a\n\nb", "a\n\nb\n"},
		{"filter long line", []string{"filter", "7"}, "1\n" + long + "2\n7\n", long + "7\n"},
		{"filter long line regexp", []string{"filter", "x+7$"}, "1\n" + long + "2\n", long},
		{"count lines", []string{"count"}, seq(1, 100), "100\n"},
		{"count no final newline", []string{"count", "-l"}, "a\nb", "1\n"},
		{"count bytes", []string{"count", "-c"}, seq(1, 100), "292\n"},
		{"count empty", []string{"count"}, "", "0\n"},
		{"head default", []string{"head"}, seq(1, 20), seq(1, 10)},
		{"head lines", []string{"head", "-n", "3"}, seq(1, 20), seq(1, 3)},
		{"head -N", []string{"head", "-3"}, seq(1, 20), seq(1, 3)},
		{"head zero", []string{"head", "-n", "0"}, seq(1, 20), ""},
		{"head more than there is", []string{"head", "-n", "30"}, seq(1, 5), seq(1, 5)},
		{"head bytes", []string{"head", "-c", "5"}, seq(1, 20), "1\n2\n3"},
		{"cat", []string{"cat"}, long + "tail", long + "tail"},
		{"sha256", []string{"sha256"}, long, sum(long)},
		{"sha256 empty", []string{"sha256"}, "", sum("")},
		{"sink", []string{"sink"}, long, ""},
	}
	for _, tt := range tests {
		for _, via := range []struct {
			name string
			run  func(*testing.T, []string, string) (string, error)
		}{{"files", runFiles}, {"rings", runRings}} {
			t.Run(tt.name+"/"+via.name, func(t *testing.T) {
				got, err := via.run(t, tt.args, tt.input)
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				if got != tt.want {
					t.Errorf("output %q…, want %q…", clip(got), clip(tt.want))
				}
			})
		}
	}
}

func clip(s string) string { return s[:min(len(s), 80)] }

func TestGenRandomIsAFunctionOfTheSeed(t *testing.T) {
	a, err := runFiles(t, []string{"gen", "--bytes", "100000", "--seed", "7"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := runRings(t, []string{"gen", "--bytes", "100000", "--seed", "7"}, "")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := runFiles(t, []string{"gen", "--bytes", "100000", "--seed", "8"}, "")
	if a != b {
		t.Error("the same seed gave different bytes through a file and through a ring")
	}
	if a == c || a == strings.Repeat("\x00", 100000) {
		t.Error("seeds 7 and 8 gave the same bytes, or zeros")
	}
	// Any offset split gives the same stream.
	whole := make([]byte, 1000)
	fillRandom(whole, 0, 7)
	parts := make([]byte, 1000)
	fillRandom(parts[:13], 0, 7)
	fillRandom(parts[13:700], 13, 7)
	fillRandom(parts[700:], 700, 7)
	if !bytes.Equal(whole, parts) || !bytes.Equal(whole, []byte(a[:1000])) {
		t.Error("fillRandom depends on how the stream is split")
	}
}

func TestHeadStopsAnEndlessWriter(t *testing.T) {
	gen, _ := Default()["gen"].Parse(nil)
	head, _ := Default()["head"].Parse([]string{"-n", "1"})
	w, r := ringPair(t)
	outW, outR := ringPair(t)
	genErr := make(chan error, 1)
	go func() { genErr <- gen(nil, w, OSFiles{}); w.Close() }()
	go func() { io.ReadAll(outR); outR.Close() }()
	if err := head(r, outW, OSFiles{}); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	if err := <-genErr; !errors.Is(err, syscall.EPIPE) {
		t.Errorf("endless gen after head closed its input: %v, want EPIPE", err)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"gen", "-n", "-3"}, "gen: -n must not be negative"},
		{[]string{"gen", "--bytes", "12Q"}, `gen: --bytes: invalid size "12Q" (want a number with an optional K, M, G, KiB, MiB, GiB, KB, MB or GB)`},
		{[]string{"gen", "--bytes", "1K", "-n", "3"}, "gen: --bytes does not go with -n or --text"},
		{[]string{"gen", "--seed", "3"}, "gen: --seed goes with --bytes"},
		{[]string{"gen", "extra"}, `gen: unexpected argument "extra"`},
		{[]string{"gen", "--nope"}, "gen: flag provided but not defined: -nope"},
		{[]string{"filter"}, "filter: want one PATTERN, got 0 arguments"},
		{[]string{"filter", "a("}, "filter: bad PATTERN: error parsing regexp: missing closing ): `a(`"},
		{[]string{"count", "-l", "-c"}, "count: -l and -c do not go together"},
		{[]string{"head", "-n", "x"}, `head: -n: invalid number of lines "x"`},
		{[]string{"head", "-n", "1", "-c", "1"}, "head: -n and -c do not go together"},
		{[]string{"sink", "a", "b"}, "sink: want at most one FILE, got 2 arguments"},
		{[]string{"cat", "file"}, "cat: takes no FILE arguments; use cat from PATH for files (command cat file)"},
		{[]string{"sha256", "x"}, `sha256: unexpected argument "x"`},
	}
	for _, tt := range tests {
		_, err := Default()[tt.args[0]].Parse(tt.args[1:])
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != tt.want {
			t.Errorf("%q: error %v, want usage error %q", tt.args, err, tt.want)
		}
	}
}

// TestHelp: every builtin's Help prints its usage; --help and -h do too,
// but for the builtins named as coreutils programs, which leave them to
// the program with a usage error that carries the builtin's own help.
func TestHelp(t *testing.T) {
	namesakes := map[string]bool{"cat": true, "head": true, "tee": true, "split": true}
	for name, b := range Default() {
		if b.Namesake != namesakes[name] {
			t.Errorf("%s: Namesake = %v, want %v", name, b.Namesake, namesakes[name])
		}
		got, err := runStage(t, b.Help(), "")
		if err != nil || !strings.HasPrefix(got, "usage: "+b.Synopsis+"\n") {
			t.Errorf("%s Help: %q, %v", name, clip(got), err)
		}
		for _, flag := range []string{"--help", "-h"} {
			if !namesakes[name] {
				got, err := runFiles(t, []string{name, flag}, "")
				if err != nil || !strings.HasPrefix(got, "usage: "+b.Synopsis+"\n") {
					t.Errorf("%s %s: %q, %v", name, flag, clip(got), err)
				}
				continue
			}
			_, err := b.Parse([]string{flag})
			want := name + ": the help asked for is the program " + name + "'s; the builtin's own: gpipe help " + name
			var ue *UsageError
			if !errors.As(err, &ue) || err.Error() != want || ue.Help == nil {
				t.Errorf("%s %s: %v, want a usage error %q with the builtin's help", name, flag, err, want)
			}
		}
	}
}

// TestHelpFlagsGNU: a builtin's help lists its flags as the README writes
// them, GNU's way: "-n N", "--bytes SIZE", aligned, with the default.
func TestHelpFlagsGNU(t *testing.T) {
	got, err := runStage(t, Default()["split"].Help(), "")
	want := `usage: split [-n K] [--bytes SIZE] [--buffer SIZE] OUTPUT...
Deal the input round-robin to the OUTPUTs (>(…) ports, files, - for stdout): K whole lines (default 1) to each in turn, or blocks of SIZE bytes. A slow output never stalls the others (see tee).
  --buffer SIZE  how much an output queues in memory before spilling to a temporary file (default 64MiB)
  --bytes SIZE   deal blocks of SIZE bytes instead of lines
  -n K           lines to each OUTPUT in turn (default 1)
`
	if err != nil || got != want {
		t.Errorf("split's help:\n%s\nwant:\n%s", got, want)
	}
}
