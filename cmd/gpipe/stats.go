package main

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// statsFormat is the value of --stats: off, text or json. It is a boolean
// flag that also takes a value, so that "--stats" alone asks for the
// table and "--stats=json" for JSON ("--stats json" would read json as
// the SPEC, as for any boolean flag).
type statsFormat string

const (
	statsOff  statsFormat = ""
	statsText statsFormat = "text"
	statsJSON statsFormat = "json"
)

func (f *statsFormat) String() string { return string(*f) }

func (f *statsFormat) Set(v string) error {
	switch v {
	case "true", "text":
		*f = statsText
	case "json":
		*f = statsJSON
	case "false":
		*f = statsOff
	default:
		return fmt.Errorf("want text or json, not %q", v)
	}
	return nil
}

// IsBoolFlag lets "--stats" stand alone (the flag package then sets
// "true").
func (f *statsFormat) IsBoolFlag() bool { return true }

// selfCPU is the CPU time gpipe itself used so far, its children apart.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
