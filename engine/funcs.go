package engine

import (
	"fmt"
	"io"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/plumbing"
	"github.com/gpipe/gpipe/stage"
)

// Func is a stage written in Go: it reads its standard input from stdin
// and writes its output to stdout, as a program would, and runs inside
// this process as gpipe's builtins do, on in-memory rings when its
// neighbours are builtins or Go functions too. args are the words after
// its name. It returns nil on success; an error is the stage's failure:
// status 1, with "gpipe: stage N (name): error" on the run's standard
// error. A write after the reader has gone fails with an error that
// wraps syscall.EPIPE; returning it ends the stage as a broken pipe
// (141), as a program killed by SIGPIPE.
//
// Each Write to stdout is passed on at once, as a write to a pipe is:
// wrap stdout in a bufio.Writer (and flush it before returning) to write
// small pieces fast. A teardown makes the next Read or Write fail; a
// function that neither reads nor writes cannot be stopped, and is left
// behind after the grace period, as a builtin would be.
type Func func(args []string, stdin io.Reader, stdout io.Writer) error

// funcBuiltin makes f a builtin called name, for the registry a plan is
// resolved with.
func funcBuiltin(name string, f Func) *builtins.Builtin {
	return &builtins.Builtin{
		Name:     name,
		Synopsis: name + " [ARG…]",
		Summary:  "a Go function of this program",
		Parse: func(args []string) (builtins.Run, error) {
			return func(in plumbing.Source, out plumbing.Sink, _ builtins.Files) error {
				return f(args, sourceReader{in}, sinkWriter{out})
			}, nil
		},
	}
}

// inProcessFuncs checks that every stage that is a Go function runs inside
// this process, which is the only one that has it.
func inProcessFuncs(names []string, funcs map[string]Func, cmds []stage.Command) error {
	for i, c := range cmds {
		if _, ok := funcs[c.Builtin]; ok && !c.InProcess {
			return fmt.Errorf("%s: a Go function runs inside this program only, not in a process of its own (Isolate, the shm transport, or a named FIFO at its ends)", names[i])
		}
	}
	return nil
}

// sourceReader is a builtin's input as an io.Reader.
type sourceReader struct{ in plumbing.Source }

func (r sourceReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	buf, err := r.in.Peek(1)
	n := copy(p, buf)
	r.in.Release(n)
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// sinkWriter is a builtin's output as an io.Writer.
type sinkWriter struct{ out plumbing.Sink }

func (w sinkWriter) Write(p []byte) (int, error) {
	if err := plumbing.Write(w.out, p); err != nil {
		return 0, err
	}
	return len(p), w.out.Flush()
}
