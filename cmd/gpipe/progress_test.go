package main

import (
	"os"
	"path/filepath"
	"regexp"
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

// progressSource writes 100000 bytes, then 200000 more once the test has
// seen the first on the terminal (step2), and ends when told (step3): the
// test sees two different counts drawn however fast or slow the machine.
const progressSource = `head -c 100000 /dev/zero
while [ ! -e step2 ]; do sleep 0.02; done
head -c 200000 /dev/zero
while [ ! -e step3 ]; do sleep 0.02; done
`

// TestTerminalProgress runs --progress on a real terminal, from an
// interactive bash: the lines are drawn, redrawn in place with new counts
// (a /proc count on the pipe from sh, a ring's on the edge to sink, with
// head -c's total, a bar and a percentage), and erased at the end, so
// that the prompt comes back on a clean row.
func TestTerminalProgress(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), map[string]string{"src.sh": progressSource})
	sh.send("gpipe --progress 'sh src.sh | head -c 300000 | sink'\n")
	sh.expect(`edge 1: stage 1 \(sh\) → stage 2 \(head\): 97\.7 KiB[^\r\n]* \(writer's wchar from /proc\)`)
	sh.expect(`edge 2: stage 2 \(head\) → stage 3 \(sink\): 97\.7 KiB of 293\.0 KiB \[######\.{14}\]  33%`)
	if err := os.WriteFile(filepath.Join(sh.dir, "step2"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sh.expect(`edge 1: stage 1 \(sh\) → stage 2 \(head\): 293\.0 KiB`)
	sh.expect(`edge 2: stage 2 \(head\) → stage 3 \(sink\): 293\.0 KiB of 293\.0 KiB \[#{20}\] 100%`)
	if err := os.WriteFile(filepath.Join(sh.dir, "step3"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sh.expect(`\$ $`)
	checkErased(t, sh.shown(), 2)
	sh.send("echo status=$?\n")
	sh.expect(`status=0\r\n`)
}

// TestTerminalProgressCtrlC: Ctrl-C tears the pipeline down, and the
// lines are erased before gpipe dies by SIGINT.
func TestTerminalProgressCtrlC(t *testing.T) {
	sh := startShell(t, terminalGpipe(t), map[string]string{"src.sh": progressSource})
	sh.send("gpipe --progress 'sh src.sh | cat | sink'\n")
	sh.expect(`edge 2: stage 2 \(cat\) → stage 3 \(sink\): 97\.7 KiB`)
	sh.send("\x03")
	sh.expect(`\$ $`)
	checkErased(t, sh.shown(), 2)
	sh.send("echo status=$?\n")
	sh.expect(`status=130\r\n`)
}

// checkErased checks that the terminal's last draw of n lines was erased
// (the erase-down sequence came after it, and nothing was drawn again)
// and that the prompt came back at the start of the row where the lines
// had been.
func checkErased(t *testing.T, shown string, n int) {
	t.Helper()
	up := "\x1b[" + string(rune('0'+n)) + "A\r" // the end of every draw
	last := strings.LastIndex(shown, up)
	if last < 0 {
		t.Fatalf("no line was drawn in place (no %q):\n%q", up, shown)
	}
	tail := shown[last+len(up):]
	// What may come between: the terminal's echo of Ctrl-C, and bash's
	// new line after a job killed by SIGINT.
	if !regexp.MustCompile(`^(\^C)?\x1b\[J(\r?\n)?\$ $`).MatchString(tail) {
		t.Errorf("after the last draw the terminal shows %q; want the lines erased (\\x1b[J) and then the prompt", tail)
	}
	if strings.Contains(tail, "edge ") {
		t.Errorf("lines drawn again after the erase: %q", tail)
	}
}
