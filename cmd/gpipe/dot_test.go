package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needDotEnv, set (by .ci/run, which installs Graphviz), makes a missing
// dot a failure instead of a skip.
const needDotEnv = "GPIPE_TEST_NEED_DOT"

// TestDotRendersWithGraphviz hands the DOT of several plans (process
// substitutions, builtins on rings, a pipeline file with a stage gpipe
// added) to the real dot, which must accept it, and checks that --svg
// draws the same through it.
func TestDotRendersWithGraphviz(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv(needDotEnv) != "" {
			t.Fatalf("dot is not installed, and %s says it must be", needDotEnv)
		}
		t.Skip("Graphviz's dot is not installed here (apt-get install graphviz); CI installs it")
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, args := range [][]string{
		{"paste <(seq 3) <(gen -n 3) | tee >(wc -l) | cat"},
		{"gen --text 'a \"quoted\" \\\\ word' -n 2 | filter a | count"},
		{"-f", filepath.Join("..", "..", "examples", "logsplit.gp")},
	} {
		for _, flag := range []string{"--dot", "--svg"} {
			out := filepath.Join(t.TempDir(), "out")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			code := run(append([]string{"gpipe", flag}, args...), os.Environ(), devnull, f, os.Stderr, nil)
			f.Close()
			if code != 0 {
				t.Fatalf("gpipe %s %q: exit %d", flag, args, code)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if flag == "--svg" {
				if !bytes.Contains(data, []byte("<svg")) {
					t.Errorf("gpipe --svg %q wrote no SVG: %.200q", args, data)
				}
				continue
			}
			cmd := exec.Command(dot, "-Tsvg")
			cmd.Stdin = bytes.NewReader(data)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || strings.TrimSpace(stderr.String()) != "" {
				t.Errorf("dot rejects the DOT of %q: %v %s\n%s", args, err, stderr.String(), data)
			}
		}
	}
}
