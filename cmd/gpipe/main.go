// Command gpipe runs a pipeline written in bash syntax as a supervised graph
// of processes.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Teardown signals are caught before anything starts, so that none is
	// lost between the start of the first stage and the supervisor.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	os.Exit(run(os.Args, os.Environ(), os.Stdin, os.Stdout, os.Stderr, sigs))
}
