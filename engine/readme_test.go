package engine_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExample: the README's Go API example is Example's body, which
// go test compiles and runs, its output checked.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Go API\n")
	_, block, ok2 := strings.Cut(section, "```go\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no Go block under \"## Go API\"")
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(example), "func Example() {\n")
	body, _, _ = strings.Cut(body, "\t// Output:")
	// The README's main calls engine.Main first, as a program must; the
	// test binary's TestMain does it for Example.
	lines := strings.Split(block, "\n")
	var kept []string
	for _, l := range lines {
		if strings.Contains(l, "engine.Main()") || l == "func main() {" || l == "}" {
			continue
		}
		kept = append(kept, l)
	}
	got := strings.TrimSpace(strings.Join(kept, "\n"))
	if want := strings.TrimSpace(body); got != want {
		t.Errorf("README's example:\n%s\n\nExample's body:\n%s", got, want)
	}
}
