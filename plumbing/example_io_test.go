package plumbing_test

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/plumbing"
)

// A builtin runs over any io.Reader and io.Writer: here filter, from a
// string to standard output.
func ExampleNewReaderSource() {
	run, err := builtins.Default()["filter"].Parse([]string{"7"})
	if err != nil {
		fmt.Println(err)
		return
	}
	in := plumbing.NewReaderSource(strings.NewReader("5\n7\n17\n21"))
	out := plumbing.NewWriterSink(os.Stdout)
	err = run(in, out, builtins.OSFiles{})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	fmt.Println("error:", err)
	// Output:
	// 7
	// 17
	// error: <nil>
}

// A writer whose reader has gone fails with a broken pipe, which a builtin
// takes as "downstream finished".
func ExampleNewWriterSink() {
	r, w := io.Pipe()
	r.Close() // nobody reads
	out := plumbing.NewWriterSink(w)
	err := plumbing.Write(out, []byte("hello\n"))
	if err == nil {
		err = out.Flush()
	}
	fmt.Println(err, plumbing.IsBrokenPipe(err))
	// Output:
	// broken pipe (io: read/write on closed pipe) true
}
