package stage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// The exit statuses gpipe gives a stage, and itself, for its own reasons:
// the one home of their numbers, and of the rules that choose them, for
// every start path (a stage gpipe starts directly, and one its helper
// process starts, see RunChild). A stage's own status passes through as
// it is.
//
// They live in a file of package stage rather than a package of their
// own: their readers are stage and cmd/gpipe, which imports stage anyway,
// and no package below stage needs a number (builtins and plumbing say
// "broken pipe" with an error, plumbing.IsBrokenPipe), so no dependency
// boundary asks for one.
const (
	// ExitInputBroken is the status a builtin ends with when the writer
	// of its input ring died before closing it, after passing on every
	// byte the writer had committed.
	ExitInputBroken = 3

	// ExitPanic is the status of an in-process builtin that panicked: a
	// bug in gpipe, reported as that stage's failure (EX_SOFTWARE of
	// sysexits.h).
	ExitPanic = 70

	// ExitCannotStart is gpipe's own failure, not the user's program's
	// or file's: a stage that could not be started because gpipe's
	// resources ran out (descriptors, memory, processes), a wait that
	// failed, and cmd/gpipe's own failures.
	ExitCannotStart = 125

	// ExitNotExecutable is a program that is there but cannot run: not
	// executable, a directory, a "#!" interpreter that is not there; as
	// in bash.
	ExitNotExecutable = 126

	// ExitNotFound is a program that is not there; as in bash.
	ExitNotFound = 127

	// ExitBrokenPipe is the status of a stage that ended because the
	// reader of its output had gone: a program killed by SIGPIPE, or a
	// builtin that says so as a shell would. Such a stage did not fail
	// for its own reason (see Status.BrokenPipe).
	ExitBrokenPipe = 128 + int(syscall.SIGPIPE)
)

// ExitSignalled is the status of a process that died by sig, as a shell
// gives it: 128+N for signal N.
func ExitSignalled(sig syscall.Signal) int { return 128 + int(sig) }

// startFailure is the status and message of a program that could not be
// started, whichever path started it (the same rule for both, see
// RunChild), as bash gives them: ExitNotFound for a program that is not
// there; ExitNotExecutable for one that is there but cannot run (not
// executable, a directory, an argument list too long, a "#!" interpreter
// that is not there, where bash 5.2 says "cannot execute: required file
// not found" and 127, and bash 5.1 "bad interpreter" and 126);
// ExitCannotStart when gpipe's own resources ran out (descriptors,
// memory, processes).
func startFailure(path string, err error) (int, string) {
	switch {
	case resourceError(err):
		return ExitCannotStart, errText(err)
	case errors.Is(err, syscall.ENOENT):
		if interp, ok := interpreter(path); ok {
			return ExitNotExecutable, fmt.Sprintf("%s: bad interpreter: %s", interp, errText(err))
		}
		if _, statErr := os.Stat(path); statErr == nil {
			return ExitNotExecutable, "cannot execute: required file not found"
		}
		return ExitNotFound, errText(err)
	}
	return ExitNotExecutable, errText(err)
}

// shellFallback is what runs a file that execve refused as no executable
// format (ENOEXEC): a script without "#!", which bash runs with a shell,
// and so does gpipe, on both start paths.
func shellFallback(path string, args []string) (string, []string) {
	return "/bin/sh", append([]string{"sh", path}, args[1:]...)
}

// redirectCode is the status of a stage whose redirection failed: 1, as
// in bash, or ExitCannotStart when what failed is gpipe's resources.
func redirectCode(err error) int {
	if resourceError(err) {
		return ExitCannotStart
	}
	return 1
}

// resourceError reports whether err is one of gpipe's resources running
// out, not the user's program or file: ExitCannotStart.
func resourceError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EAGAIN, syscall.EBADF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// interpreter returns the program named on the "#!" line of the file at
// path, if it has one.
func interpreter(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return "", false
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", false
	}
	return fields[0], true
}
