package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/gpipe/gpipe/engine"
)

// A pipeline in bash syntax, run from Go: its input from a string, its
// output into a buffer.
func Example() {
	var out bytes.Buffer
	res, err := engine.Run(context.Background(), "tr a-z A-Z | sort | uniq -c", engine.Options{
		Stdin:  strings.NewReader("b\na\nb\n"),
		Stdout: &out,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(out.String())
	fmt.Println("exit status", res.ExitCode)
	// Output:
	//       1 A
	//       2 B
	// exit status 0
}

// A plan is made before anything starts: here what gpipe --explain
// prints for it.
func ExamplePlan_Explain() {
	p, err := engine.Parse("gen -n 3 | sed s/^/n/ | count")
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := p.Plan(engine.Options{Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(plan.Explain())
	// Output:
	// stage 1: gen -n 3: builtin gen
	// stage 2: sed 's/^/n/': program /usr/bin/sed
	// stage 3: count: builtin count
	// edge 1: stage 1 (gen) → stage 2 (sed): pipe (sed is an external program)
	// edge 2: stage 2 (sed) → stage 3 (count): pipe (sed is an external program)
}

// A stage that fails is named in the error, with its status.
func ExampleResult_Err() {
	_, err := engine.Run(context.Background(), "seq 3 | grep 7 | wc -l", engine.Options{})
	fmt.Println(err)
	// Output:
	// gpipe: stage 2 (grep): exit status 1
}
