package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// buildDeadline bounds the build of the real gpipe binary; with a warm
// build cache it takes a second or two.
const buildDeadline = 5 * time.Minute

// gpipeBinary builds the real gpipe program into tb.TempDir() and returns
// its path; the directory, binary included, is removed when tb ends. Call it
// once per test or benchmark function, outside any timed loop: the tests
// that compare gpipe with bash run this binary rather than the test binary,
// whose start-up (flag parsing, testscript.Main) would distort the figures.
//
// release selects the build the README recommends for installing:
// statically linked (CGO_ENABLED=0) and without urfave/cli's documentation
// generator (-tags urfave_cli_no_docs), which start about 1.5 ms faster.
func gpipeBinary(tb testing.TB, release bool) string {
	tb.Helper()
	goTool := goCommand(tb)
	bin := filepath.Join(tb.TempDir(), "gpipe")
	ctx, cancel := context.WithTimeout(context.Background(), buildDeadline)
	defer cancel()
	args := []string{"build", "-o", bin}
	if release {
		args = append(args, "-tags", releaseTags)
	}
	cmd := exec.CommandContext(ctx, goTool, append(args, "github.com/gpipe/gpipe/cmd/gpipe")...)
	if release {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("go build gpipe: %v\n%s", err, out)
	}
	return bin
}

// releaseTags are the build tags of the recommended build.
const releaseTags = "urfave_cli_no_docs"

// goCommand finds the go tool that is building this test: the one in
// $GOROOT/bin (go test sets GOROOT for the tests it runs), then whatever go
// is on PATH.
func goCommand(tb testing.TB) string {
	tb.Helper()
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("no go tool to build gpipe with: %v", err)
	}
	return p
}
