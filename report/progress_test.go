package report

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/stage"
)

func TestCoreutilsSize(t *testing.T) {
	// As coreutils' head -c reads them (checked against GNU head 9.1).
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"100", 100, true},
		{"0", 0, true},
		{"1b", 512, true},
		{"1k", 1024, true},
		{"1K", 1024, true},
		{"1KB", 1000, true},
		{"1kB", 1000, true},
		{"1KiB", 1024, true},
		{"2m", 2 << 20, true},
		{"2M", 2 << 20, true},
		{"2MB", 2e6, true},
		{"2MiB", 2 << 20, true},
		{"3G", 3 << 30, true},
		{"1T", 1 << 40, true},
		{"1g", 0, false},
		{"1Ki", 0, false},
		{"1bB", 0, false},
		{"1KIB", 0, false},
		{"", 0, false},
		{"K", 0, false},
		{"-1", 0, false},
		{"99999999999E", 0, false},
	} {
		got, ok := coreutilsSize(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("coreutilsSize(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestKnownTotals: which edges get a total before the run, and what it is.
func TestKnownTotals(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	regular, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct {
		spec  string
		stdin *os.File
		want  []int64
	}{
		{"cat F | wc -c", devnull, []int64{5000}},
		{"cat F F | cat | wc -c", devnull, []int64{10000, 10000}},
		{"cat -u -- F | tr a b | wc -c", devnull, []int64{5000, -1}},
		{"cat < F | tr a b | wc -c", devnull, []int64{5000, -1}},
		{"tr a b < F | cat", devnull, []int64{-1}},
		{"cat -n F | cat", devnull, []int64{-1}},
		{"cat F 2>&1 | cat", devnull, []int64{-1}},
		{"cat F > /dev/null | cat", devnull, []int64{-1}},
		{"cat /dev/null | cat", devnull, []int64{-1}},
		{"cat | cat | wc -c", regular, []int64{5000, 5000}},
		{"cat | cat | wc -c", devnull, []int64{-1, -1}},
		{"head -c 1K < F | cat", devnull, []int64{1024}},
		{"head -c1KB F | cat", devnull, []int64{1000}},
		{"head --bytes=10M F | cat", devnull, []int64{5000}},
		{"head -c 5 F F | cat", devnull, []int64{-1}},
		{"head -n 5 F | cat", devnull, []int64{-1}},
		{"head -c -5 F | cat", devnull, []int64{-1}},
		{"seq 3 | head -c 2 | cat", devnull, []int64{-1, 2}},
		{"head -c 1M /dev/zero | cat", devnull, []int64{1 << 20}},
		{"gen --bytes 2G | head -c 100 | cat", devnull, []int64{2 << 30, 100}},
		{"gen --bytes=4K --seed 3 | cat", devnull, []int64{4096}},
		{"gen -n 10 | cat", devnull, []int64{-1}},
		// The builtins say what they know: gen's text lines, head -c -0's
		// whole input, cat's input.
		{"gen -n 3 --text ab | cat | wc -c", devnull, []int64{9, 9}},
		{"gen --text ab | cat", devnull, []int64{-1}},
		{"cat < F | head -c -0 | cat", devnull, []int64{5000, 5000}},
		// wc shares tee's stdout: the edge to cat carries its bytes too.
		{"cat F | tee >(wc -c) | cat", devnull, []int64{5000, -1, -1}},
	} {
		spec := strings.ReplaceAll(tc.spec, "F", f)
		g, err := parser.Parse("spec", spec, parser.Config{Env: os.Environ()})
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		cmds, err := stage.Resolve(g, os.Environ(), builtins.Default())
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		stage.Place(g, cmds, false, false)
		if got := knownTotals(g, cmds, tc.stdin); !slices.Equal(got, tc.want) {
			t.Errorf("%s: totals %v, want %v", tc.spec, got, tc.want)
		}
	}
}

func TestHumanBytesAndETA(t *testing.T) {
	for n, want := range map[float64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 588895: "575.1 KiB", 12 << 20: "12.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%v) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[float64]string{0.2: "1s", 59: "59s", 65: "1m05s", 3600: "1h00m", 7260: "2h01m", 1e9: ">99h"} {
		if got := eta(s); got != want {
			t.Errorf("eta(%v) = %q, want %q", s, got, want)
		}
	}
}
