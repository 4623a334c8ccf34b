package gpipetest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpipe/gpipe/testscripts/gpipetest"
)

// BenchmarkPipeVsExec runs one pipeline three ways from a script, in the
// same run and interleaved (each iteration runs all three, in an order
// that rotates): "pipe SPEC" through the engine in the test process,
// "exec gpipe SPEC" (the gpipe command, a static build, started for each
// line), and "exec sh -c SPEC". Each way is a script of lines lines, so
// that a script's own set-up (its directory, its environment) weighs
// little; the figure of each is its median time per line over b.N runs,
// and pipe/gpipe and pipe/sh are ratios of those medians. Run it with
//
//	go test -run '^$' -bench PipeVsExec ./testscripts/gpipetest
func BenchmarkPipeVsExec(b *testing.B) {
	const (
		spec  = "seq 1 100 | grep 7 | wc -l"
		lines = 20
	)
	gpipe := buildGpipe(b)
	ways := []struct{ name, line string }{
		{"pipe", "pipe '" + spec + "'"},
		{"gpipe", "exec gpipe '" + spec + "'"},
		{"sh", "exec sh -c '" + spec + "'"},
	}
	dirs := make([]string, len(ways))
	for i, w := range ways {
		dirs[i] = b.TempDir()
		script := strings.Repeat(w.line+"\nstdout '^19$'\n", lines)
		if err := os.WriteFile(filepath.Join(dirs[i], w.name+".txtar"), []byte(script), 0o666); err != nil {
			b.Fatal(err)
		}
	}
	times := make([][]float64, len(ways))
	b.ResetTimer()
	for n := range b.N {
		for k := range ways {
			i := (n + k) % len(ways)
			p := testscript.Params{Dir: dirs[i], Setup: func(env *testscript.Env) error {
				env.Setenv("PATH", filepath.Dir(gpipe)+string(os.PathListSeparator)+env.Getenv("PATH"))
				return nil
			}}
			gpipetest.Setup(&p)
			ft := &fakeT{deadline: time.Now().Add(time.Minute)}
			start := time.Now()
			func() {
				defer func() {
					if r := recover(); r != nil && r != errAbort {
						panic(r)
					}
				}()
				testscript.RunT(ft, p)
			}()
			if ft.failed {
				b.Fatalf("%s: the script failed:\n%s", ways[i].name, ft.log.String())
			}
			times[i] = append(times[i], float64(time.Since(start).Nanoseconds())/lines)
		}
	}
	b.StopTimer()
	med := make([]float64, len(ways))
	for i := range ways {
		slices.Sort(times[i])
		med[i] = times[i][len(times[i])/2]
	}
	b.ReportMetric(0, "ns/op")
	for i, w := range ways {
		b.ReportMetric(med[i], w.name+"-ns/line")
	}
	b.ReportMetric(med[0]/med[1], "pipe/gpipe")
	b.ReportMetric(med[0]/med[2], "pipe/sh")
}

// buildGpipe builds the gpipe command as the README recommends installing
// it (static, without urfave/cli's documentation generator) into a
// directory of its own, and returns its path.
func buildGpipe(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "gpipe")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "urfave_cli_no_docs", "-o", bin, "github.com/gpipe/gpipe/cmd/gpipe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build gpipe: %v\n%s", err, fmt.Sprint(string(out)))
	}
	return bin
}
