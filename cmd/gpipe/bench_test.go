package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The benchmarks run the real gpipe binary and a shell on the same
// pipeline in the same run, interleaved (each iteration runs both, and which
// goes first alternates), because absolute times on a shared machine drift.
// Each reports both sides per op and their ratio; the built-in ns/op, which
// would be the sum of both, is suppressed. Run them with
//
//	go test -run '^$' -bench . ./cmd/gpipe

// startup3 is three stages that do nothing: the cost of starting and
// reaping a pipeline.
const startup3 = "/bin/true | /bin/true | /bin/true"

func BenchmarkStartup3(b *testing.B) {
	benchCompare(b, benchSpec{spec: startup3, other: bashArgv(startup3), name: "bash"})
}

func BenchmarkStartup10(b *testing.B) {
	spec := strings.Repeat("/bin/true | ", 9) + "/bin/true"
	benchCompare(b, benchSpec{spec: spec, other: bashArgv(spec), name: "bash"})
}

// BenchmarkStartup3Dash takes dash, the fastest common shell to start, as a
// reference for the same pipeline (dash has no pipefail; /bin/true never
// fails).
func BenchmarkStartup3Dash(b *testing.B) {
	const dash = "/bin/dash"
	if _, err := os.Stat(dash); err != nil {
		b.Skipf("no %s: %v", dash, err)
	}
	benchCompare(b, benchSpec{spec: startup3, other: []string{dash, "-c", startup3}, name: "dash"})
}

// BenchmarkStartup3PlainBuild is BenchmarkStartup3 with gpipe built by a
// plain "go build": dynamically linked (os/user, through the shell
// expander, uses cgo) and with urfave/cli's documentation generator, whose
// initialisation alone costs most of a millisecond.
func BenchmarkStartup3PlainBuild(b *testing.B) {
	benchCompare(b, benchSpec{spec: startup3, other: bashArgv(startup3), name: "bash", plainBuild: true})
}

// BenchmarkStartupShells is start-up against bash and dash, gpipe and
// both shells interleaved in one run (each iteration runs all three, in
// an order that rotates), on the three pipelines issue 18 names: three
// /bin/true, one /bin/true (which both shells exec in place, without a
// fork), and three builtins against the coreutils that do the same (both
// print 1). The shells run the pipeline as it is, "-c SPEC", with no
// pipefail (dash has none), so that each takes its fastest path.
//
// Each side's figure is its median over b.N runs, not the mean: on a
// shared machine a few runs that another job delays would otherwise make
// the figure. gpipe/bash and gpipe/dash are ratios of those medians;
// the targets are at most 1.0 for the externals and 0.7 for the
// builtins, against bash.
func BenchmarkStartupShells(b *testing.B) {
	shells := []string{"bash", "dash"}
	for _, sh := range shells {
		if _, err := exec.LookPath(sh); err != nil {
			b.Skipf("no %s to compare with: %v", sh, err)
		}
	}
	cases := []struct {
		name, gpipe, shell string
	}{
		{"3true", startup3, startup3},
		{"1true", "/bin/true", "/bin/true"},
		{"builtins", "gen -n 1 | filter 1 | count", "seq 1 | grep 1 | wc -l"},
	}
	bin := gpipeBinary(b, true)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			argvs := [][]string{{bin, c.gpipe}}
			for _, sh := range shells {
				argvs = append(argvs, []string{sh, "-c", c.shell})
			}
			want, err := exec.Command(bin, c.gpipe).Output()
			if err != nil {
				b.Fatalf("gpipe %q: %v", c.gpipe, err)
			}
			for _, argv := range argvs[1:] {
				if out, err := exec.Command(argv[0], argv[1:]...).Output(); err != nil || string(out) != string(want) {
					b.Fatalf("outputs differ: gpipe %q, %s %q (%v)", want, argv[0], out, err)
				}
			}
			times := make([][]time.Duration, len(argvs))
			b.ResetTimer()
			for i := range b.N {
				for k := range argvs {
					j := (i + k) % len(argvs)
					times[j] = append(times[j], timeRun(b, argvs[j]))
				}
			}
			b.StopTimer()
			med := make([]float64, len(argvs))
			for j, t := range times {
				slices.Sort(t)
				med[j] = float64(t[len(t)/2].Nanoseconds())
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(med[0], "gpipe-ns/op")
			for j, sh := range shells {
				b.ReportMetric(med[j+1], sh+"-ns/op")
				b.ReportMetric(med[0]/med[j+1], fmt.Sprintf("gpipe/%s", sh))
			}
		})
	}
}

// throughputBytes is what BenchmarkThroughput pushes through two pipes:
// head's "4G" is 4 GiB.
const throughputBytes = 4 << 30

// BenchmarkThroughput moves 4 GiB through two pipes between external
// programs, where gpipe, out of the data path, must cost nothing per byte.
// GB/s are decimal gigabytes (1e9 bytes) a second.
func BenchmarkThroughput(b *testing.B) {
	const spec = "head -c 4G /dev/zero | cat | cat > /dev/null"
	// command cat: the external program, not gpipe's builtin.
	const gspec = "head -c 4G /dev/zero | command cat | command cat > /dev/null"
	benchCompare(b, benchSpec{spec: gspec, other: bashArgv(spec), name: "bash", bytes: throughputBytes})
}

// BenchmarkShmVsPipe moves 4 GiB from builtin to builtin over a shm ring
// (--isolate), against the same over a pipe (--transport pipe): the ring's
// gain. The consumer, count -l, looks at every byte it is given (count -c
// and sink would only advance the ring, and overstate the transport).
func BenchmarkShmVsPipe(b *testing.B) {
	const spec = "gen --bytes 4G | count -l"
	benchCompare(b, benchSpec{spec: spec, gpipeArgs: []string{"--isolate"}, gpipeOther: []string{"--transport", "pipe", spec}, name: "pipe", bytes: throughputBytes, check: true})
}

// BenchmarkMemVsShm is the same 4 GiB over an in-process ring (the
// default) against a shm ring between processes (--isolate).
func BenchmarkMemVsShm(b *testing.B) {
	const spec = "gen --bytes 4G | cat | count -l"
	benchCompare(b, benchSpec{spec: spec, gpipeOther: []string{"--isolate", spec}, name: "isolate", bytes: throughputBytes, check: true})
}

// BenchmarkCat4G: 4 GiB through the builtin cat, its newlines counted
// (every byte looked at), against bash's head, cat and wc -l on pipes.
func BenchmarkCat4G(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:  "gen --bytes 4G | cat | count -l",
		other: bashArgv("head -c 4G /dev/zero | cat | wc -l"),
		name:  "bash",
		bytes: throughputBytes,
		check: true,
	})
}

// BenchmarkStartBuiltins is the start and end of three builtins that pass
// one line, against bash running the coreutils that do the same. (The
// issue's "filter 7" selects nothing, for which grep fails under pipefail;
// "1" selects the line, and both print 1.)
func BenchmarkStartBuiltins(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:  "gen -n 1 | filter 1 | count",
		other: bashArgv("seq 1 | grep 1 | wc -l"),
		name:  "bash",
		check: true,
	})
}

// BenchmarkStartBuiltinsIsolated is BenchmarkStartBuiltins with every
// builtin in a process of its own, against the default.
func BenchmarkStartBuiltinsIsolated(b *testing.B) {
	const spec = "gen -n 1 | filter 1 | count"
	benchCompare(b, benchSpec{spec: spec, gpipeOther: []string{"--isolate", spec}, name: "isolate", check: true})
}

// BenchmarkCat50 passes 1,000 lines through 50 builtin cats, against bash
// with 50 /bin/cat: the cost of a stage.
func BenchmarkCat50(b *testing.B) {
	spec := "gen -n 1000" + strings.Repeat(" | cat", 50) + " | count"
	bash := "seq 1000" + strings.Repeat(" | cat", 50) + " | wc -l"
	benchCompare(b, benchSpec{spec: spec, other: bashArgv(bash), name: "bash", check: true})
}

// BenchmarkGenFilterCount1e8 is the showcase at 1e8 lines, against bash's
// seq and grep -c (its fastest form). The one-loop floor the issue names
// is builtins' BenchmarkOneLoopGenFilterCount.
func BenchmarkGenFilterCount1e8(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:  "gen -n 100000000 | filter 7 | count",
		other: bashArgv("seq 100000000 | grep -c 7"),
		name:  "bash-grep-c",
		check: true,
	})
}

// BenchmarkGenFilterCountGrepC is the showcase at 1e7 lines against
// bash's seq | grep -c 7.
func BenchmarkGenFilterCountGrepC(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:  "gen -n 10000000 | filter 7 | count",
		other: bashArgv("seq 10000000 | grep -c 7"),
		name:  "bash-grep-c",
		check: true,
	})
}

// BenchmarkSha256Overlap hashes 4 GiB of pseudo-random bytes: gen (about
// a third of sha256's CPU) and sha256 run on two cores at once, so the
// whole should take about as long as sha256 alone. The other side is
// sha256 of 4 GiB of zeros, which gen makes at almost no cost: sha256
// alone, as near as a pipeline gets.
func BenchmarkSha256Overlap(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:       "gen --bytes 4G --seed 1 | sha256",
		gpipeOther: []string{"gen --bytes 4G | sha256"},
		name:       "sha256-alone",
		bytes:      throughputBytes,
	})
}

// BenchmarkGenFilterCount is the builtins' showcase against the shell's
// tools: ten million lines, those holding a 7, counted. Both print 5217031
// (checked before timing).
func BenchmarkGenFilterCount(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:  "gen -n 10000000 | filter 7 | count",
		other: bashArgv("seq 10000000 | grep 7 | wc -l"),
		name:  "bash",
		check: true,
	})
}

// BenchmarkBuiltinCat passes 1 GiB through the builtin cat on shm rings,
// against bash's head and cat on pipes.
func BenchmarkBuiltinCat(b *testing.B) {
	benchCompare(b, benchSpec{
		spec:  "gen --bytes 1G | cat | count -l",
		other: bashArgv("head -c 1G /dev/zero | cat | wc -l"),
		name:  "bash",
		bytes: 1 << 30,
	})
}

// bashArgv runs spec under bash with the options the differential test
// holds gpipe to.
func bashArgv(spec string) []string {
	return []string{"bash", "-c", "set -o pipefail; " + spec}
}

// benchSpec is one comparison: gpipe running spec against another command.
type benchSpec struct {
	spec       string
	other      []string // the command to compare with
	gpipeArgs  []string // flags for gpipe's side, before spec
	gpipeOther []string // or: gpipe itself with these arguments
	name       string   // the other side's name in the metrics
	bytes      int64    // what one run moves, for GB/s; 0 for none
	check      bool     // check once, untimed, that both print the same
	plainBuild bool     // time a plain "go build" of gpipe, see gpipeBinary
}

// benchCompare times gpipe against the other command b.N times each,
// interleaved, and reports "gpipe-ns/op", "NAME-ns/op" and "gpipe/NAME";
// with bytes > 0 also "gpipe-GB/s" and "NAME-GB/s". gpipe is built before
// the timer starts.
func benchCompare(b *testing.B, bs benchSpec) {
	bin := gpipeBinary(b, !bs.plainBuild)
	gpipe := append(append([]string{bin}, bs.gpipeArgs...), bs.spec)
	other := bs.other
	if bs.gpipeOther != nil {
		other = append([]string{bin}, bs.gpipeOther...)
	}
	if _, err := exec.LookPath(other[0]); err != nil {
		b.Skipf("no %s to compare with: %v", other[0], err)
	}
	if bs.check {
		g, err1 := exec.Command(gpipe[0], gpipe[1:]...).Output()
		o, err2 := exec.Command(other[0], other[1:]...).Output()
		if err1 != nil || err2 != nil || string(g) != string(o) {
			b.Fatalf("outputs differ: gpipe %q (%v), %s %q (%v)", g, err1, bs.name, o, err2)
		}
	}
	name := bs.name
	b.ResetTimer()

	var tg, to time.Duration
	for i := range b.N {
		if i%2 == 0 {
			tg += timeRun(b, gpipe)
			to += timeRun(b, other)
		} else {
			to += timeRun(b, other)
			tg += timeRun(b, gpipe)
		}
	}

	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(tg.Nanoseconds())/n, "gpipe-ns/op")
	b.ReportMetric(float64(to.Nanoseconds())/n, name+"-ns/op")
	b.ReportMetric(float64(tg)/float64(to), "gpipe/"+name)
	if bs.bytes > 0 {
		b.ReportMetric(float64(bs.bytes)*n/tg.Seconds()/1e9, "gpipe-GB/s")
		b.ReportMetric(float64(bs.bytes)*n/to.Seconds()/1e9, name+"-GB/s")
	}
}

// timeRun runs argv to completion, with stdin, stdout and stderr on
// /dev/null, and returns how long it took from start to reaped. A failed
// run fails the benchmark (a figure for a broken pipeline means nothing),
// showing the output of a second, untimed run.
func timeRun(b *testing.B, argv []string) time.Duration {
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		// Once more, untimed, for what it says about itself.
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		b.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return d
}

// teeBytes is what BenchmarkTee2G fans out: head's "2G" is 2 GiB.
const teeBytes = 2 << 30

// BenchmarkTee2G fans 2 GiB out to two external consumers and a file,
// through gpipe's builtin tee (its outputs are pipes, so it copies once
// in user space and never stalls on one output) against bash with GNU tee.
// bash waits for its ">(…)" branches explicitly; gpipe always does. The
// consumers read every byte; check makes sure both sides print the same
// two counts.
func BenchmarkTee2G(b *testing.B) {
	const spec = "head -c 2G /dev/zero | tee >(wc -c) >(wc -c) > /dev/null"
	benchCompare(b, benchSpec{spec: spec, other: bashArgv(spec + "; wait"), name: "bash", bytes: teeBytes, check: true})
}

// BenchmarkTee2GFloor is BenchmarkTee2G's gpipe against bash moving the
// same bytes to one wc -c with no fan-out at all: head's own copy and one
// reader, the floor that no tee can go under. gpipe/floor says how close
// the fan-out comes to it.
func BenchmarkTee2GFloor(b *testing.B) {
	const spec = "head -c 2G /dev/zero | tee >(wc -c) >(wc -c) > /dev/null"
	benchCompare(b, benchSpec{spec: spec, other: bashArgv("head -c 2G /dev/zero | wc -c"), name: "floor", bytes: teeBytes})
}

// BenchmarkTee2GSplice is BenchmarkTee2G's gpipe against itself with
// tee --copy: what tee(2) and splice(2) save over one copy through user
// space.
func BenchmarkTee2GSplice(b *testing.B) {
	const spec = "head -c 2G /dev/zero | tee >(wc -c) >(wc -c) > /dev/null"
	const copied = "head -c 2G /dev/zero | tee --copy >(wc -c) >(wc -c) > /dev/null"
	benchCompare(b, benchSpec{spec: spec, gpipeOther: []string{copied}, name: "copy", bytes: teeBytes})
}

// BenchmarkStatsOverhead is the cost of --stats --progress on 4 GiB
// through two pipes between external programs: gpipe is not in their data
// path, so they should cost nothing per byte (--progress reads /proc
// every 2 s, --stats each process's /proc/PID/io as it ends). The other
// side is gpipe without them; gpipe/plain is the overhead.
func BenchmarkStatsOverhead(b *testing.B) {
	const spec = "head -c 4G /dev/zero | command cat | command cat > /dev/null"
	benchCompare(b, benchSpec{spec: spec, gpipeArgs: []string{"--stats", "--progress"}, gpipeOther: []string{spec}, name: "plain", bytes: throughputBytes})
}

// BenchmarkStatsOverheadBuiltins is the same for builtins on rings, whose
// counters both read, and whose busy time --stats keeps (two clock reads
// at every wait).
func BenchmarkStatsOverheadBuiltins(b *testing.B) {
	const spec = "gen --bytes 4G | cat | count -l"
	benchCompare(b, benchSpec{spec: spec, gpipeArgs: []string{"--stats", "--progress"}, gpipeOther: []string{spec}, name: "plain", bytes: throughputBytes})
}
