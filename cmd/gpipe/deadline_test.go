package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gpipe/gpipe/internal/procs"
)

// scaled is a test's deadline d, scaled by the knob,
// GPIPE_TEST_DEADLINE_SCALE (procs.DeadlineScaleEnv).
func scaled(d time.Duration) time.Duration { return procs.Scaled(d) }

// runDeadline is the "deadline" command of the scripts: coreutils'
// timeout with its duration scaled by the knob,
//
//	deadline [TIMEOUT-OPTIONS] SECONDS COMMAND [ARG]...
//
// which it replaces itself with, so that its status is timeout's (124 for
// a command that ran out of time).
func runDeadline(args []string) int {
	argv := []string{"timeout"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-s" || a == "-k" || a == "--signal" || a == "--kill-after":
			argv = append(argv, a)
			if i+1 < len(args) {
				i++
				argv = append(argv, args[i])
			}
			continue
		case strings.HasPrefix(a, "-"):
			argv = append(argv, a)
			continue
		}
		secs, err := strconv.ParseFloat(a, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "deadline: %q: want a number of seconds\n", a)
			return 2
		}
		argv = append(argv, strconv.FormatFloat(secs*procs.DeadlineScale(), 'f', -1, 64))
		argv = append(argv, args[i+1:]...)
		break
	}
	path, err := exec.LookPath("timeout")
	if err != nil {
		fmt.Fprintf(os.Stderr, "deadline: %v\n", err)
		return 127
	}
	err = syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "deadline: %v\n", err)
	return 126
}
