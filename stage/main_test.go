package stage

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
)

// TestMain lets this test binary play the gpipe processes that Run starts
// from its own executable: the guardian of a pipeline's process group and
// the helper of a stage.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case GuardianArg:
			os.Exit(RunGuardian())
		case ChildArg:
			os.Exit(RunChild(os.Args[2:], os.Stderr, registry()))
		}
	}
	// Run gives a pipeline the terminal it finds; these tests run without
	// one, as in CI, whatever terminal they were started from.
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0); err == nil {
		_ = unix.IoctlSetInt(fd, unix.TIOCNOTTY, 0)
		unix.Close(fd)
	}
	os.Exit(m.Run())
}

// registry is the builtins these tests resolve pipelines with, and the
// one their helper processes find them in: as gpipe's main, the test
// binary's entry point is where the registry is chosen.
func registry() map[string]*builtins.Builtin { return builtins.Default() }
