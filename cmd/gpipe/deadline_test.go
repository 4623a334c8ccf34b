package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// deadlineScaleEnv is the one knob that scales every hang deadline of the
// tests: the scripts' "deadline N" (in place of timeout N), the waits of
// waitfile and gone, and the Go tests' own. A deadline only catches a hang
// (no progress for so long); on a slow or loaded machine, or under -race,
// GPIPE_TEST_DEADLINE_SCALE=3 gives every one of them three times as long.
// It is a positive number; unset or anything else means 1.
const deadlineScaleEnv = "GPIPE_TEST_DEADLINE_SCALE"

func deadlineScale() float64 {
	f, err := strconv.ParseFloat(os.Getenv(deadlineScaleEnv), 64)
	if err != nil || f <= 0 {
		return 1
	}
	return f
}

// scaled is a test's deadline d, scaled by the knob.
func scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * deadlineScale())
}

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
		argv = append(argv, strconv.FormatFloat(secs*deadlineScale(), 'f', -1, 64))
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
