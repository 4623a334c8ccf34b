package engine_test

import (
	"os"
	"testing"

	"github.com/gpipe/gpipe/engine"
)

// TestMain is what a user's own tests do: the test binary plays the
// guardian and helper processes of the pipelines it starts.
func TestMain(m *testing.M) {
	engine.Main()
	os.Exit(m.Run())
}
