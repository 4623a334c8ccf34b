package plumbing

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLimitErrorText(t *testing.T) {
	tests := []struct {
		err  *LimitError
		want string
	}{
		{&LimitError{What: "descriptors", Need: 10, InUse: 5, Limit: 12, Knob: "ulimit -n"},
			"the pipeline needs up to 10 descriptors, and gpipe holds 5 already: more than the limit of 12 (ulimit -n)"},
		{&LimitError{What: "descriptors", Need: 10, InUse: 5, Limit: 12, Knob: "ulimit -n", Err: fmt.Errorf("create pipe: %w", unix.EMFILE)},
			"create pipe: too many open files: the pipeline needs up to 10 descriptors, and gpipe holds 5 already: more than the limit of 12 (ulimit -n)"},
		{Need{Bytes: 3<<20 + 1}.addressError(512<<20, 700<<20-1, nil),
			"the pipeline needs up to 4 MiB of address space for its rings, and gpipe holds 700 MiB already: more than the limit of 512 MiB (ulimit -v)"},
		{Need{Bytes: 1 << 20}.addressError(1<<30+1<<19, 0, unix.ENOMEM),
			"cannot allocate memory: the pipeline needs up to 1 MiB of address space for its rings, and gpipe holds 0 MiB already: more than the limit of 1024 MiB (ulimit -v)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if got := tt.err.Unwrap(); got != tt.err.Err {
			t.Errorf("Unwrap() = %v, want %v", got, tt.err.Err)
		}
	}
}

// fdSoftLimit returns the soft limit of descriptors, skipping the test
// when there is none to speak of.
func fdSoftLimit(t *testing.T) unix.Rlimit {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<30 {
		t.Skipf("no finite limit of descriptors: %+v, %v", rl, err)
	}
	return rl
}

// openFDs is how many descriptors the process has open.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(entries) - 1
}

func TestNeedCheck(t *testing.T) {
	if err := (Need{FDs: 1, Maps: 1, Bytes: 1}).Check(); err != nil {
		t.Errorf("a small need: %v", err)
	}
	rl := fdSoftLimit(t)
	var le *LimitError
	err := Need{FDs: 1 << 29}.Check()
	if !errors.As(err, &le) || le.What != "descriptors" || le.Need != 1<<29 || le.Limit != int(rl.Cur) || le.Knob != "ulimit -n" ||
		le.InUse < 3 || le.InUse > openFDs(t)+1 || le.Err != nil {
		t.Errorf("too many descriptors: %#v", err)
	}
	data, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Skip(err)
	}
	maxMaps, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	err = Need{Maps: 1 << 29}.Check()
	if !errors.As(err, &le) || le.What != "memory maps" || le.Need != 1<<29 || le.Limit != maxMaps || le.Knob != "vm.max_map_count" || le.InUse < 1 {
		t.Errorf("too many memory maps: %#v", err)
	}
}

// withAddressLimit sets the soft limit of address space to what the
// process has mapped and room, for the test: far more than it will map
// meanwhile.
func withAddressLimit(t *testing.T, room int64) (limit int64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &old); err != nil || old.Max != unix.RLIM_INFINITY {
		t.Skipf("the hard limit of address space is set: %+v, %v", old, err)
	}
	_, inUse, ok := addressLimit()
	if ok {
		t.Skip("a limit of address space is set already")
	}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, found := strings.CutPrefix(line, "VmSize:"); found {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			inUse = kb << 10
		}
	}
	if inUse == 0 || inUse+room > 1<<62 {
		t.Skip("cannot tell the address space in use")
	}
	limit = (inUse + room) &^ (1<<20 - 1)
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: uint64(limit), Max: old.Max}); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_AS, &old); err != nil {
			t.Errorf("restore the limit of address space: %v", err)
		}
	})
	return limit
}

// TestNeedCheckAddressSpace: under ulimit -v, rings that would not fit in
// what is left of the address space are refused before anything is made.
func TestNeedCheckAddressSpace(t *testing.T) {
	limit := withAddressLimit(t, 1<<40)
	if err := (Need{Bytes: 1 << 30}).Check(); err != nil {
		t.Errorf("1 GiB of rings with 1 TiB to spare: %v", err)
	}
	var le *LimitError
	err := Need{Bytes: 2 << 40}.Check()
	if !errors.As(err, &le) || le.What != "MiB of address space for its rings" || le.Need != 2<<20 || le.Limit != int(limit>>20) ||
		le.Unit != " MiB" || le.Knob != "ulimit -v" || le.InUse <= 0 || int64(le.InUse) > limit>>20 {
		t.Errorf("2 TiB of rings with 1 TiB to spare: %#v", err)
	}
	// An ENOMEM while starting, with maps to spare, is the address space.
	p := &Plan{need: Need{Bytes: 5 << 20}}
	err = p.WithNeed(fmt.Errorf("edge 1: %w", unix.ENOMEM))
	if !errors.As(err, &le) || le.Need != 5 || le.Limit != int(limit>>20) || !errors.Is(err, unix.ENOMEM) ||
		!strings.HasPrefix(err.Error(), "edge 1: cannot allocate memory: the pipeline needs up to 5 MiB of address space for its rings") {
		t.Errorf("WithNeed(ENOMEM) = %v", err)
	}
}

// TestWithNeed: an error of running out of descriptors or memory maps
// says what the plan needs and the limit; any other stays as it is.
func TestWithNeed(t *testing.T) {
	rl := fdSoftLimit(t)
	p := &Plan{need: Need{FDs: 7, Maps: 3}}
	other := errors.New("other")
	limitErr := &LimitError{What: "descriptors"}
	for _, err := range []error{nil, other, limitErr, fmt.Errorf("wrapped: %w", limitErr)} {
		if got := p.WithNeed(err); got != err {
			t.Errorf("WithNeed(%v) = %v, want it unchanged", err, got)
		}
	}
	if _, _, ok := addressLimit(); !ok {
		// ENOMEM with maps to spare and no limit of address space: as it is.
		enomem := fmt.Errorf("map: %w", unix.ENOMEM)
		if got := p.WithNeed(enomem); got != enomem {
			t.Errorf("WithNeed(ENOMEM) = %v, want it unchanged", got)
		}
	}
	err := p.WithNeed(fmt.Errorf("create pipe: %w", unix.EMFILE))
	var le *LimitError
	want := fmt.Sprintf("create pipe: too many open files: the pipeline needs up to 7 descriptors, and gpipe holds %d already: more than the limit of %d (ulimit -n)", le2InUse(err), rl.Cur)
	if !errors.As(err, &le) || err.Error() != want || !errors.Is(err, unix.EMFILE) {
		t.Errorf("WithNeed(EMFILE) = %v, want %s", err, want)
	}
	maxMaps, inUse, ok := mapLimit()
	if !ok {
		t.Skip("no map limit")
	}
	p = &Plan{need: Need{Maps: maxMaps - inUse - mapSlack + 10}}
	err = p.WithNeed(unix.ENOMEM)
	if !errors.As(err, &le) || le.What != "memory maps" || le.Need != p.need.Maps || le.Limit != maxMaps || !errors.Is(err, unix.ENOMEM) {
		t.Errorf("WithNeed(ENOMEM) near the map limit = %#v", err)
	}
}

// le2InUse is the descriptors in use that a LimitError says, or -1.
func le2InUse(err error) int {
	var le *LimitError
	if errors.As(err, &le) {
		return le.InUse
	}
	return -1
}
