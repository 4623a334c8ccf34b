// Command gpipe runs a pipeline written in bash syntax as a supervised graph
// of processes.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/gpipe/gpipe/stage"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == stage.ChildArg {
		// gpipe re-executed as the helper of one stage.
		os.Exit(stage.RunChild(os.Args[2:], os.Stderr))
	}
	// Teardown signals are caught before anything starts, so that none is
	// lost between the start of the first stage and the supervisor.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	os.Exit(run(os.Args, os.Environ(), os.Stdin, os.Stdout, os.Stderr, sigs))
}
