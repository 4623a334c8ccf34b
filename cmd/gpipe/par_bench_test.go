package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The par benchmarks run one CPU-bound program over 1 GiB of real text
// (Go's own sources, repeated) in several ways, interleaved in one run:
//
//   - one: the program alone on the file;
//   - ceiling: two copies of it, each on one half of the file (split
//     beforehand), started together: what this machine's cores give at
//     best, measured rather than assumed (2 vCPUs give less than 2×);
//   - par-j1, par-j2, par-k-j2: gpipe 'par [-k] -j N -- CMD < file';
//   - parallel-pipe, parallel-pipe-part: GNU parallel -j2 --pipe (blocks
//     through parallel's own process) and --pipe-part (each job reads its
//     part of the file), when parallel is installed (apt-get install
//     parallel; the column is left out, and says so, when it is not).
//
// Each reports its seconds per run, its speed-up over one, and gpipe's
// par-j2 as a fraction of the ceiling's speed-up ("par-j2/ceiling").
// Every output goes through a pipe to cat (GNU grep skips its work when
// its output is /dev/null), and the outputs of one, par and parallel are
// checked to add up to the same before timing (the copies' counts are
// summed). Run them with
//
//	go test -run '^$' -bench 'Par' -benchtime 1x ./cmd/gpipe

// parText is the size of the text the benchmarks read.
const parText = 1 << 30

// parWork is one workload: a program whose output, summed over copies
// (awk's sum of the first column), is the same however its input is
// split.
type parWork struct {
	cmd string // as a shell word list: "grep -cE 'func [A-Z]'"
	sum bool   // its outputs are numbers to add up; false: not compared
}

// BenchmarkParGrep: a costly regular expression, counted.
func BenchmarkParGrep(b *testing.B) {
	benchPar(b, parWork{cmd: `grep -cE 'func [A-Z][a-zA-Z]*\(.*(error|bool)'`, sum: true}, false)
}

// BenchmarkParAwk: awk splitting every line into fields.
func BenchmarkParAwk(b *testing.B) {
	benchPar(b, parWork{cmd: `awk '{ n += NF } END { print n }'`, sum: true}, false)
}

// BenchmarkParSha256: sha256sum of what each copy gets (the digests
// differ with the split, so they are not compared).
func BenchmarkParSha256(b *testing.B) {
	benchPar(b, parWork{cmd: `sha256sum`}, false)
}

// BenchmarkParUneven: the grep over text whose cost varies by runs: 8 MiB
// of lines the expression must work on, then 8 MiB of short lines it
// rejects at once, and so on. A fixed rotation of 8 MiB blocks (gpipe's
// split -n, as examples/parallel-map.gp used to do it) gives one copy
// all the costly runs; par deals whole lines to whichever copy has the
// least queued.
func BenchmarkParUneven(b *testing.B) {
	// grep -c fails on a share without a match (a copy dealt only cheap
	// runs, by the fixed rotation): the count is what matters.
	script := filepath.Join(b.TempDir(), "count.sh")
	if err := os.WriteFile(script, []byte(`grep -cE 'func [A-Z][a-zA-Z]*\(.*(error|bool)' || true`+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	benchPar(b, parWork{cmd: "sh " + script, sum: true}, true)
}

// BenchmarkParOrderedBuiltins: 1e8 lines through par -k of the builtin
// filter (copies are goroutines over framed blocks on rings) against one
// filter, both counted.
func BenchmarkParOrderedBuiltins(b *testing.B) {
	bin := gpipeBinary(b, true)
	runs := []parRun{
		{name: "one", argv: []string{bin, "gen -n 100000000 | filter 7 | count"}},
		{name: "par-k-j2", argv: []string{bin, "gen -n 100000000 | par -k -j 2 -- filter 7 | count"}},
		{name: "par-j2", argv: []string{bin, "gen -n 100000000 | par -j 2 -- filter 7 | count"}},
	}
	took := timeRuns(b, runs)
	b.ReportMetric(0, "ns/op")
	for i, r := range runs {
		b.ReportMetric(took[i].Seconds(), r.name+"-s/op")
		if i > 0 {
			b.ReportMetric(float64(took[i])/float64(took[0]), r.name+"/one")
		}
	}
}

// BenchmarkParDeal is the dealer and merge alone: 4 GiB of pseudo-random
// lines through par -j 2 of the builtin cat (goroutines on rings) and of
// the program cat (pipes), against one cat of each kind, the lines
// counted. GB/s are of the 4 GiB.
func BenchmarkParDeal(b *testing.B) {
	bin := gpipeBinary(b, true)
	const gen = "gen --bytes 4G --seed 1 | "
	runs := []parRun{
		{name: "builtin-one", argv: []string{bin, gen + "cat | count -l"}},
		{name: "builtin-par-j2", argv: []string{bin, gen + "par -j 2 -- cat | count -l"}},
		{name: "program-one", argv: []string{bin, gen + "command cat | count -l"}},
		{name: "program-par-j2", argv: []string{bin, gen + "par -j 2 -- command cat | count -l"}},
	}
	if _, err := exec.LookPath("parallel"); err == nil {
		runs = append(runs, parRun{name: "parallel-pipe", argv: []string{bin, gen + "command parallel --pipe -j2 --block 1M cat | count -l"}})
	} else {
		b.Log("no GNU parallel (apt-get install parallel): its column is left out")
	}
	took := timeRuns(b, runs)
	for i, r := range runs {
		b.ReportMetric(took[i].Seconds(), r.name+"-s/op")
		b.ReportMetric(4<<30/took[i].Seconds()/1e9, r.name+"-GB/s")
	}
	b.ReportMetric(float64(took[1])/float64(took[0]), "builtin-par/one")
	b.ReportMetric(float64(took[3])/float64(took[2]), "program-par/one")
	if len(runs) > 4 {
		b.ReportMetric(float64(took[4])/float64(took[3]), "parallel-pipe/program-par")
	}
	b.ReportMetric(0, "ns/op")
}

// parRun is one way of running a workload.
type parRun struct {
	name string
	argv []string
}

func benchPar(b *testing.B, w parWork, uneven bool) {
	bin := gpipeBinary(b, true)
	dir := b.TempDir()
	text := filepath.Join(dir, "text")
	makeParText(b, text, uneven)
	half1, half2 := filepath.Join(dir, "half1"), filepath.Join(dir, "half2")
	splitHalves(b, text, half1, half2)
	sh := func(s string) []string { return []string{"bash", "-c", "set -o pipefail; " + s + " | cat > /dev/null"} }
	// GNU parallel exits with the number of jobs that failed, and grep -c
	// fails on a block without a match: its status is not the point.
	shAny := func(s string) []string { return []string{"bash", "-c", s + " | cat > /dev/null"} }
	sum := " | awk '{ s += $1 } END { print s }'"
	runs := []parRun{
		{"one", sh(w.cmd + " < " + text)},
		{"ceiling", sh("{ " + w.cmd + " < " + half1 + " & " + w.cmd + " < " + half2 + "; wait; }")},
		{"par-j1", []string{bin, "par -j 1 -- " + w.cmd + " < " + text + " | cat > /dev/null"}},
		{"par-j2", []string{bin, "par -j 2 -- " + w.cmd + " < " + text + " | cat > /dev/null"}},
		{"par-k-j2", []string{bin, "par -k -j 2 -- " + w.cmd + " < " + text + " | cat > /dev/null"}},
	}
	if uneven {
		// gpipe's own fixed rotation: split -n deals 8 MiB runs' worth
		// of lines to each copy in turn.
		lines := countLines(b, text) / (parText / (8 << 20))
		runs = append(runs, parRun{"split-rotation", []string{bin, fmt.Sprintf("split -n %d >(%s) >(%s) < %s | cat > /dev/null", lines, w.cmd, w.cmd, text)}})
	}
	if _, err := exec.LookPath("parallel"); err == nil {
		runs = append(runs,
			parRun{"parallel-pipe", shAny("parallel --pipe -j2 --block 1M " + shellQuote(w.cmd) + " < " + text)},
			parRun{"parallel-pipe-part", shAny("parallel --pipe-part -a " + text + " -j2 --block 32M " + shellQuote(w.cmd))})
	} else {
		b.Log("no GNU parallel (apt-get install parallel): its columns are left out")
	}
	if w.sum {
		// Untimed: every way adds up to the same.
		want := ""
		for _, r := range runs {
			if r.name == "ceiling" {
				continue
			}
			argv := append([]string(nil), r.argv...)
			last := len(argv) - 1
			argv[last] = strings.TrimSuffix(argv[last], " | cat > /dev/null") + sum
			out, err := exec.Command(argv[0], argv[1:]...).Output()
			if err != nil {
				b.Fatalf("%s: %v", r.name, err)
			}
			if want == "" {
				want = string(out)
			} else if string(out) != want {
				b.Fatalf("%s sums to %q, one to %q", r.name, out, want)
			}
		}
	}
	b.ResetTimer()
	took := timeRuns(b, runs)
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	for i, r := range runs {
		b.ReportMetric(took[i].Seconds(), r.name+"-s/op")
		if i > 0 {
			b.ReportMetric(float64(took[0])/float64(took[i]), r.name+"-speedup")
		}
	}
	ceiling := float64(took[0]) / float64(took[1])
	for i, r := range runs[2:] {
		b.ReportMetric(float64(took[0])/float64(took[i+2])/ceiling, r.name+"/ceiling")
	}
}

// timeRuns runs each of runs b.N times, in a rotating order, and returns
// each one's mean time.
func timeRuns(b *testing.B, runs []parRun) []time.Duration {
	took := make([]time.Duration, len(runs))
	for i := range b.N {
		for k := range runs {
			j := (i + k) % len(runs)
			took[j] += timeRun(b, runs[j].argv)
		}
	}
	for i := range took {
		took[i] /= time.Duration(b.N)
	}
	return took
}

// makeParText writes parText bytes of Go source to path, whole lines; with
// uneven, in runs of 8 MiB alternating between the sources and short lines
// that no expression of the benchmarks works on for long.
func makeParText(b *testing.B, path string, uneven bool) {
	var corpus bytes.Buffer
	goroot, err := exec.Command(goCommand(b), "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("no Go sources to make text of: go env GOROOT: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	_ = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && corpus.Len() < 64<<20 {
			if data, err := os.ReadFile(p); err == nil {
				corpus.Write(data)
			}
		}
		return nil
	})
	if corpus.Len() < 1<<20 {
		b.Skipf("no Go sources under %s to make text of", src)
	}
	data := corpus.Bytes()
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	cheap := bytes.Repeat([]byte("x\n"), len(data)/2)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	written, run := 0, 0
	for written < parText {
		chunk := data
		if uneven {
			chunk = data[:min(len(data), 8<<20)]
			chunk = chunk[:bytes.LastIndexByte(chunk, '\n')+1]
			if run%2 == 1 {
				chunk = cheap[:len(chunk)&^1]
			}
			run++
		}
		chunk = chunk[:min(len(chunk), parText-written)]
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
		written += len(chunk)
	}
}

// splitHalves writes the two halves of path, cut at the line end nearest
// its middle.
func splitHalves(b *testing.B, path, half1, half2 string) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	mid := bytes.IndexByte(data[len(data)/2:], '\n') + len(data)/2 + 1
	if err := os.WriteFile(half1, data[:mid], 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(half2, data[mid:], 0o600); err != nil {
		b.Fatal(err)
	}
}

func countLines(b *testing.B, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(data, []byte{'\n'})
}

// shellQuote quotes s as one shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
