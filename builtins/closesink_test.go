package builtins

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestWriteErrorSaidOnce: a FILE that cannot be written (/dev/full) fails
// tee and sink with the write's error, said once, though the sink's Close
// returns it again.
func TestWriteErrorSaidOnce(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	big := strings.Repeat("x", 3<<20) // over a FileSink's buffer: the write fails before Close
	for _, tt := range []struct {
		args  []string
		input string
		want  string
	}{
		{[]string{"tee", "/dev/full"}, "x\n", "/dev/full: write /dev/full: no space left on device"},
		{[]string{"tee", "/dev/full"}, big, "/dev/full: write /dev/full: no space left on device"},
		{[]string{"sink", "/dev/full"}, "x\n", "write /dev/full: no space left on device"},
		{[]string{"sink", "/dev/full"}, big, "write /dev/full: no space left on device"},
	} {
		t.Run(fmt.Sprintf("%s, %d bytes", strings.Join(tt.args, " "), len(tt.input)), func(t *testing.T) {
			v := vias[0]
			err := runIO(t, v, tt.args, strings.NewReader(tt.input), io.Discard, OSFiles{})
			if !errors.Is(err, syscall.ENOSPC) || err.Error() != tt.want {
				t.Errorf("error %q, want %q", errString(err), tt.want)
			}
		})
	}
}
