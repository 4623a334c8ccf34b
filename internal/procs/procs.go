// Package procs finds processes the way gpipe's tests must: by pid, or by
// a tag in their environment, never by name, since the machine runs other
// processes of the same names; and says how long the tests wait for them
// (DeadlineScaleEnv).
package procs

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// Runs reports whether pid is a process that has not ended: it exists and
// is not a zombie.
func Runs(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Tagged lists the running processes whose environment holds tag, a
// whole "NAME=value" entry.
func Tagged(tag string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	want := []byte("\x00" + tag + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, append(env, 0)...), want) {
			continue
		}
		if Runs(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitUntagged waits until no running process has tag in its environment,
// and returns the pids of those still running after limit.
func WaitUntagged(tag string, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		left := Tagged(tag)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
