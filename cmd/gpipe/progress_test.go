package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

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
