// Command gpipe runs a pipeline written in bash syntax as a supervised graph
// of processes.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gpipe/gpipe/engine"
)

func main() {
	// gpipe re-executed as the helper of one stage, or as the guardian of
	// a pipeline's process group, runs that and exits here.
	engine.Main()
	// Teardown signals are caught before anything starts, so that none is
	// lost between the start of the first stage and the supervisor. One
	// ignored when gpipe started stays ignored, for gpipe and for the
	// stages, which inherit that (nohup gpipe …), as bash does: Go keeps
	// an ignored signal ignored unless it is caught.
	sigs := make(chan os.Signal, 8)
	// SIGUSR1 asks for a live status, and must never kill gpipe.
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1} {
		if !signal.Ignored(sig) {
			signal.Notify(sigs, sig)
		}
	}
	code, sig := runSignalled(os.Args, os.Environ(), os.Stdin, os.Stdout, os.Stderr, sigs)
	dieBy(sig)
	os.Exit(code)
}

// dieBy makes gpipe, torn down by sig and its stages gone, die by that
// signal rather than exit with stage.ExitSignalled(sig), as a program that does not catch it
// would: a calling shell sees the signal, and a loop of gpipe runs stops
// at one Ctrl-C (bash stops a loop only when its command died by SIGINT).
// The Go runtime, once sig is no longer caught, dies by it on receipt.
// SIGQUIT is left out: the runtime would print every goroutine's stack
// first; gpipe exits 131 instead.
func dieBy(sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok || (s != syscall.SIGINT && s != syscall.SIGTERM && s != syscall.SIGHUP) {
		return
	}
	signal.Reset(s)
	_ = syscall.Kill(os.Getpid(), s)
	// The signal is delivered to some thread at once; should it not
	// be (it cannot be blocked here), the exit code says the same.
	time.Sleep(time.Second)
}
