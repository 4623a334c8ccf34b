package gpipe_test

import (
	"os"
	"testing"

	"github.com/gpipe/gpipe"
)

// TestMain is what a user's own tests do: the test binary plays the
// guardian and helper processes of the pipelines it starts.
func TestMain(m *testing.M) {
	gpipe.Main()
	os.Exit(m.Run())
}
