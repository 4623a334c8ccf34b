package report

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gpipe/gpipe/parser"
	"github.com/gpipe/gpipe/stage"
)

// The totals --progress knows before the run, from the files a pipeline
// reads and the counts its stages are given.

// knownTotals returns how many bytes each edge will carry, when that is
// known before the run, or -1. A total is known for the stdout of:
//   - a builtin that says (builtins.Builtin.Size, through stage.Command):
//     gen --bytes SIZE or --text, cat and head -c N of an input whose
//     total is known (or head -c N's N), and others as they learn to;
//   - the programs cat and head -c N, as coreutils' read their arguments:
//     cat of regular files (their sizes), and either of a regular file
//     its stdin is redirected from, of gpipe's stdin when that is a
//     regular file (what is left of it), or of an edge whose total is
//     known; head -c N (K 1024, KB 1000, KiB 1024 …) N, or less when its
//     input's total is known and smaller.
//
// The input of a stage is known in the same cases.
//
// Only that stage's out edge gets the total, when it is its only one and
// no other stage shares it (a process substitution's), and the stage's
// stdout and stderr are not redirected into it or away from it. A stage
// that changes the bytes (zstd < big.bin) passes on no total.
func knownTotals(g *parser.Graph, cmds []stage.Command, stdin *os.File) []int64 {
	totals := make([]int64, len(g.Edges))
	for i := range totals {
		totals[i] = -1
	}
	// gpipe's stdin: what is left of it, when it is a regular file read by
	// one stage alone.
	stdinSize := int64(-1)
	if fi, err := stdin.Stat(); err == nil && fi.Mode().IsRegular() {
		if off, err := stdin.Seek(0, io.SeekCurrent); err == nil && off <= fi.Size() {
			stdinSize = fi.Size() - off
		}
	}
	readsStdin := func(st *parser.Stage) bool {
		d := g.Desc(st.ID, 0)
		return d.Own && !d.Redirected && len(st.Args) > 0
	}
	readers := 0
	for _, st := range g.Stages {
		if readsStdin(st) {
			readers++
		}
	}
	if readers != 1 {
		stdinSize = -1
	}
	// input is the total of stage st's stdin, when known.
	input := func(st *parser.Stage) int64 {
		for i := len(st.Redirs) - 1; i >= 0; i-- {
			if r := st.Redirs[i]; r.FD == 0 {
				if r.Op != parser.RedirRead {
					return -1
				}
				return regularSize(r.Path)
			}
		}
		d := g.Desc(st.ID, 0)
		if d.Inherits != nil {
			return -1
		}
		if d.Edge >= 0 {
			return totals[d.Edge]
		}
		if readsStdin(st) {
			return stdinSize
		}
		return -1
	}
	for _, id := range g.Order {
		st := g.Stages[id]
		if !plainStdout(st) {
			continue
		}
		out := int64(-1)
		args := cmds[id].Args
		if len(args) == 0 {
			continue
		}
		switch {
		case cmds[id].Builtin != "":
			// A builtin says what it knows itself.
			if cmds[id].Size != nil {
				out = cmds[id].Size(input(st))
			}
		case filepath.Base(args[0]) == "cat":
			out = catTotal(args[1:], func() int64 { return input(st) })
		case filepath.Base(args[0]) == "head":
			out = headTotal(args[1:], func() int64 { return input(st) })
		}
		if out < 0 {
			continue
		}
		// Its stdout's edge, when no other stage shares it (a process
		// substitution's).
		d := g.Desc(id, 1)
		if d.Edge >= 0 && !g.Shared(parser.Port{Stage: id, FD: 1}) {
			totals[d.Edge] = out
		}
	}
	return totals
}

// plainStdout says that the stage's stdout is its edge's alone: no
// redirection moves its stdout or joins its stderr to it.
func plainStdout(st *parser.Stage) bool {
	for _, r := range st.Redirs {
		if r.FD == 1 || (r.Op == parser.RedirDup && r.DupFD == 1) {
			return false
		}
	}
	return true
}

// regularSize is the size of the regular file at path, or -1.
func regularSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

// catTotal is what cat with these arguments writes: the sum of its
// files' sizes, "-" being its stdin (input). Any option but -u, which
// changes nothing, may change the bytes: unknown.
func catTotal(args []string, input func() int64) int64 {
	var files []string
	opts := true
	for _, a := range args {
		switch {
		case opts && a == "--":
			opts = false
		case opts && a == "-u":
		case opts && len(a) > 1 && a[0] == '-':
			return -1
		default:
			files = append(files, a)
		}
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	var sum int64
	stdinSeen := false
	for _, f := range files {
		n := int64(-1)
		if f == "-" {
			if stdinSeen {
				return -1
			}
			stdinSeen, n = true, input()
		} else {
			n = regularSize(f)
		}
		if n < 0 {
			return -1
		}
		sum += n
	}
	return sum
}

// headTotal is what head -c N writes, coreutils' or the builtin: N, or
// its input's size when that is known and smaller. Without -c, with a
// negative N ("all but the last N") or with several files, unknown.
func headTotal(args []string, input func() int64) int64 {
	var count string
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			files = append(files, args[i+1:]...)
			i = len(args)
		case a == "-c" || a == "--bytes":
			if i+1 == len(args) {
				return -1
			}
			count = args[i+1]
			i++
		case strings.HasPrefix(a, "--bytes="):
			count = strings.TrimPrefix(a, "--bytes=")
		case strings.HasPrefix(a, "-c"):
			count = a[2:]
		case a != "-" && strings.HasPrefix(a, "-"):
			return -1 // -n, -q, -v, …: lines, or headers
		default:
			files = append(files, a)
		}
	}
	n, ok := coreutilsSize(count)
	if !ok || len(files) > 1 {
		return -1
	}
	in := int64(-1)
	switch {
	case len(files) == 0 || files[0] == "-":
		in = input()
	default:
		in = regularSize(files[0])
	}
	if in >= 0 {
		return min(n, in)
	}
	return n
}

// coreutilsSize reads a byte count as coreutils' head -c does: decimal
// digits and an optional multiplier: b 512; k or K 1024, m or M 1024², G,
// T, P, E the next powers; any of these but b followed by B a power of
// 1000 instead (KB 1000, MB 1000²), or by iB the same power of 1024 (KiB).
func coreutilsSize(s string) (int64, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	suffix := s[i:]
	mult := int64(1)
	switch {
	case suffix == "":
	case suffix == "b":
		mult = 512
	default:
		power := strings.IndexByte("KMGTPE", suffix[0]) + 1
		if suffix[0] == 'k' || suffix[0] == 'm' {
			power = strings.IndexByte("km", suffix[0]) + 1
		}
		if power == 0 {
			return 0, false
		}
		base := int64(1024)
		switch suffix[1:] {
		case "", "iB":
		case "B":
			base = 1000
		default:
			return 0, false
		}
		for range power {
			mult *= base
		}
	}
	if n > 0 && mult > math.MaxInt64/n {
		return 0, false
	}
	return n * mult, true
}
