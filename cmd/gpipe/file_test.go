package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/parser"
)

func TestCaretLines(t *testing.T) {
	src := "param top=10\nseq 20 |\n\thead -n $tpo\n"
	for _, tc := range []struct {
		at   parser.Pos
		want string
	}{
		{parser.Pos{Line: 1, Col: 1}, "    param top=10\n    ^\n"},
		{parser.Pos{Line: 2, Col: 8}, "    seq 20 |\n           ^\n"},
		// A tab stays a tab under the line, so the caret lines up.
		{parser.Pos{Line: 3, Col: 10}, "    \thead -n $tpo\n    \t        ^\n"},
		{parser.Pos{Line: 9, Col: 1}, ""},
	} {
		if got := caretLines(src, tc.at); got != tc.want {
			t.Errorf("caretLines(%v) = %q, want %q", tc.at, got, tc.want)
		}
	}
}

// openPty opens a pseudo-terminal pair: what gpipe writes to the second
// is read from the first, and the second is a terminal to gpipe.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal side: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestFileErrorCaretOnTerminal runs gpipe on a bad file with stderr on a
// real terminal, where the error gets the file's line and a caret, and
// on a file, where it does not.
func TestFileErrorCaretOnTerminal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "typo.gp")
	if err := os.WriteFile(file, []byte("param top=10\nseq 20 | head -n $tpo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	master, slave := openPty(t)
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	msg := "gpipe: " + file + ":2:18: unknown parameter $tpo (did you mean $top?)"

	code := run([]string{"gpipe", "-f", file}, os.Environ(), stdin, stdin, slave, nil)
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	slave.Close()
	// The terminal turns "\n" into "\r\n" on the way out.
	out := readAll(t, master)
	want := msg + "\r\n    seq 20 | head -n $tpo\r\n                     ^\r\n"
	if out != want {
		t.Errorf("on a terminal, stderr is\n%q\nwant\n%q", out, want)
	}

	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	run([]string{"gpipe", "-f", file}, os.Environ(), stdin, stdin, errFile, nil)
	got, err := os.ReadFile(errFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != msg+"\n" {
		t.Errorf("on a file, stderr is %q, want %q", got, msg+"\n")
	}
}

// readAll reads what the terminal side wrote, until it is closed (EIO on
// Linux) or nothing comes for the deadline.
func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	var sb strings.Builder
	buf := make([]byte, 4096)
	f.SetReadDeadline(time.Now().Add(scaled(10 * time.Second)))
	for {
		n, err := f.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "input/output error") {
				t.Fatalf("reading the terminal: %v (read so far %q)", err, sb.String())
			}
			return sb.String()
		}
	}
}
