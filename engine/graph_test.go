package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/gpipe/gpipe/engine"
)

// letters is a Go function stage: every digit becomes a letter (0→a …),
// a byte at a time, so that how its input is cut makes no difference.
func letters(_ []string, in io.Reader, out io.Writer) error {
	w := bufio.NewWriter(out)
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		for i, c := range buf[:n] {
			if c >= '0' && c <= '9' {
				buf[i] = 'a' + c - '0'
			}
		}
		if _, werr := w.Write(buf[:n]); werr != nil {
			return werr
		}
		if err == io.EOF {
			return w.Flush()
		}
		if err != nil {
			return err
		}
	}
}

// lettersOf is what letters makes of gen -n n.
func lettersOf(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	out, _ := io.ReadAll(io.MultiReader(&b))
	for i, c := range out {
		if c >= '0' && c <= '9' {
			out[i] = 'a' + c - '0'
		}
	}
	return out
}

// fanOutGraph is gen → a Go function → three readers: two programs and a
// builtin, each of which hashes or counts what it reads, and a third
// program that passes it on to gpipe's standard output.
func fanOutGraph(n string) *engine.Graph {
	g := engine.NewGraph()
	var gen *engine.Stage
	if n == "" {
		gen = g.Command("gen")
	} else {
		gen = g.Command("gen", "-n", n)
	}
	up := g.Func("letters", letters)
	g.Pipe(gen, up)
	g.Pipe(up, g.Command("sh", "-c", "sha256sum >&2"))
	g.Pipe(up, g.Command("sha256"))
	g.Pipe(up, g.Command("sh", "-c", "exec wc -c >&2"))
	return g
}

// TestGraphFanOut: a graph built in Go, with a Go function stage whose
// output gpipe copies to two programs and a builtin: every reader gets
// every byte.
func TestGraphFanOut(t *testing.T) {
	p, err := fanOutGraph("200000").Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	explained := plan.Explain()
	for _, want := range []string{"stage 2: letters: builtin letters", "stage 6: tee /dev/fd/63 /dev/fd/62: builtin tee", "added by gpipe: copies stdout of stage 2 (letters) to its 3 readers"} {
		if !strings.Contains(explained, want) {
			t.Errorf("the plan lacks %q:\n%s", want, explained)
		}
	}
	var out, errs bytes.Buffer
	plan, _ = p.Plan(engine.Options{Stdout: &out, Stderr: &errs})
	j, err := plan.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := waitResult(t, j)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d: %v\n%s", res.ExitCode, res.Err(), errs.String())
	}
	data := lettersOf(200000)
	sum := fmt.Sprintf("%x", sha256.Sum256(data))
	if got := out.String(); got != sum+"\n" {
		t.Errorf("stdout %q, want the builtin's hash %q", got, sum)
	}
	got := strings.Split(strings.TrimSpace(errs.String()), "\n")
	want := []string{sum + "  -", fmt.Sprint(len(data))}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// TestGraphCancelMidStream: the same graph, endless, cancelled by its
// context once bytes flow, twice at once in one process: each run ends as
// torn down by SIGTERM, every stage as killed by it (or by a broken pipe
// its reader's end caused), and no process of either run is left.
func TestGraphCancelMidStream(t *testing.T) {
	p, err := fanOutGraph("").Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	cancelledTwice(t, p, "graph", func(int, *engine.Options) (func(), func()) { return nil, nil })
}

// TestGraphMisuse: what a graph cannot be is an error naming the stages.
func TestGraphMisuse(t *testing.T) {
	g := engine.NewGraph()
	a, b, c := g.Command("seq", "3"), g.Command("seq", "4"), g.Command("cat")
	g.Pipe(a, c)
	g.Pipe(b, c)
	if _, err := g.Pipeline(); err == nil || !strings.Contains(err.Error(), "stage 3 (cat) reads its standard input from both stage 1 (seq) and stage 2 (seq)") {
		t.Errorf("two stdins: %v", err)
	}
	g = engine.NewGraph()
	a, b = g.Command("cat"), g.Command("cat")
	g.Pipe(a, b)
	g.Pipe(b, a)
	if _, err := g.Pipeline(); err == nil || !strings.Contains(err.Error(), "cycle: stage 1 (cat) → stage 2 (cat) → stage 1 (cat)") {
		t.Errorf("a cycle: %v", err)
	}
	g = engine.NewGraph()
	g.Func("f", letters)
	g.Func("f", letters)
	if _, err := g.Pipeline(); err == nil || !strings.Contains(err.Error(), `a second function called "f"`) {
		t.Errorf("two functions of one name: %v", err)
	}
	// A Go function cannot run in a process of its own.
	g = engine.NewGraph()
	g.Pipe(g.Command("seq", "3"), g.Func("f", letters))
	p, err := g.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(engine.Options{Isolate: true}); err == nil || !strings.Contains(err.Error(), "stage 2 (f): a Go function runs inside this program only") {
		t.Errorf("isolated Go function: %v", err)
	}
}

// TestGraphFanIn: a stage reading two inputs through path arguments, as
// "paste <(a) <(b)", and a spec naming a Go function (Options.Funcs).
func TestGraphFanIn(t *testing.T) {
	g := engine.NewGraph()
	paste := g.Command("paste", "-d,")
	g.PipeArg(g.Command("seq", "3"), paste)
	up := g.Func("letters", letters)
	g.Pipe(g.Command("seq", "4", "6"), up)
	g.PipeArg(up, paste)
	p, err := g.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	plan, err := p.Plan(engine.Options{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	j, err := plan.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res := waitResult(t, j); res.ExitCode != 0 || out.String() != "1,e\n2,f\n3,g\n" {
		t.Errorf("exit %d, output %q", res.ExitCode, out.String())
	}

	out.Reset()
	res, err := engine.Run(context.Background(), "seq 8 10 | letters | paste -sd+", engine.Options{
		Stdout: &out, Funcs: map[string]engine.Func{"letters": letters},
	})
	if err != nil || out.String() != "i+j+ba\n" {
		t.Errorf("spec with a Go function: %v, %q (%+v)", err, out.String(), res)
	}
}
