package procs

import (
	"os"
	"strconv"
	"time"
)

// DeadlineScaleEnv is the one knob that scales the hang deadlines of the
// tests: the scripts' "deadline N" (in place of timeout N) and the Go
// tests' own; the waits of the scripts' commands (waitfile and the others
// of package gpipetest) end at go test's -timeout. A deadline only catches a hang
// (no progress for so long); on a slow or loaded machine, or under -race,
// GPIPE_TEST_DEADLINE_SCALE=3 gives every one of them three times as long.
// It is a positive number; unset or anything else means 1.
const DeadlineScaleEnv = "GPIPE_TEST_DEADLINE_SCALE"

// DeadlineScale is the knob's value: a positive number, 1 when unset or
// not a positive number.
func DeadlineScale() float64 {
	f, err := strconv.ParseFloat(os.Getenv(DeadlineScaleEnv), 64)
	if err != nil || f <= 0 {
		return 1
	}
	return f
}

// Scaled is a test's deadline d, scaled by the knob.
func Scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * DeadlineScale())
}
