package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestExampleRunLines holds the run line of every examples/*.gp to what a
// user on a clean clone can type: examples/README.md's table gives it, the
// file's header shows it, every file of examples/ it names is in the
// repository (the sample inputs), and the example's script runs exactly
// that line ("exec timeout 60 sh -c '…'", or bash for `time`), from a
// directory laid out as the top of the clone.
func TestExampleRunLines(t *testing.T) {
	const dir = "../../examples"
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rowRE := regexp.MustCompile("(?m)^\\| \\[([a-z0-9-]+\\.gp)\\]\\([a-z0-9-]+\\.gp\\) \\|.*\\| `([^`]+)` \\|$")
	runLines := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(string(readme), -1) {
		runLines[m[1]] = strings.ReplaceAll(m[2], `\|`, "|")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.gp"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	if len(runLines) != len(files) {
		t.Errorf("examples/README.md has run lines for %d files, examples/ has %d", len(runLines), len(files))
	}
	pathRE := regexp.MustCompile(`examples/[A-Za-z0-9._-]+`)
	for _, path := range files {
		name := filepath.Base(path)
		line, ok := runLines[name]
		if !ok {
			t.Errorf("examples/README.md: no run line for %s", name)
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The header's command lines, "#   CMD" with perhaps "  # a note".
		var shown []string
		for _, l := range strings.Split(string(src), "\n") {
			if cmd, ok := strings.CutPrefix(l, "#   "); ok && strings.Contains(cmd, "gpipe") {
				cmd, _, _ = strings.Cut(cmd, "  #")
				shown = append(shown, strings.TrimSpace(cmd))
			}
		}
		if !slices.Contains(shown, line) {
			t.Errorf("%s: its header does not show the run line of examples/README.md, %s", name, line)
		}
		for _, cmd := range append(shown, line) {
			for _, p := range pathRE.FindAllString(cmd, -1) {
				if _, err := os.Stat(filepath.Join(dir, "..", p)); err != nil {
					t.Errorf("%s: %q names %s, which a clean clone does not have", name, cmd, p)
				}
			}
		}
		script := filepath.Join("../../testscripts", "example_"+strings.ReplaceAll(strings.TrimSuffix(name, ".gp"), "-", "_")+".txtar")
		text, err := os.ReadFile(script)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		quoted := "'" + strings.ReplaceAll(line, "'", "''") + "'"
		ran := false
		for _, l := range strings.Split(string(text), "\n") {
			l = strings.TrimPrefix(l, "! ")
			if l == "exec deadline 60 sh -c "+quoted || l == "exec deadline 60 bash -c "+quoted {
				ran = true
			}
		}
		if !ran {
			t.Errorf("%s: %s does not run the run line as written: want the line\n\texec deadline 60 sh -c %s", name, script, quoted)
		}
		if !strings.Contains(string(text), "\nmkdir clone\ncd clone\nsymlink examples -> $EXAMPLES\n") {
			t.Errorf("%s: %s does not lay out a clean clone's examples/ in a directory of its own (mkdir clone, cd clone, symlink examples -> $EXAMPLES)", name, script)
		}
	}
}
