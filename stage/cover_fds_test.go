package stage

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRedirections: a stage's redirections, applied by gpipe for a
// builtin inside it and for a program alike, and their failures, whose
// message goes where bash sends it: gpipe's report when the stage's
// stderr is still its own, else the stderr the redirections before made.
func TestRedirections(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, []byte("from in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	notFound := missing + ": No such file or directory"
	tests := []struct {
		name           string
		spec           string
		stdout, stderr string
		code           int
		err            string // the stage's error, "" if it started
		reported       bool
		files          map[string]string
	}{
		{"descriptor by path", "cat 3< " + in + " < /dev/fd/3", "from in\n", "", 0, "", false, nil},
		{"program, descriptor by path", "sh -c cat 3< " + in + " < /dev/fd/3", "from in\n", "", 0, "", false, nil},
		{"read-write", "cat 3<> " + dir + "/rw <&3", "", "", 0, "", false, map[string]string{"rw": ""}},
		{"append", "gen -n 1 >> " + dir + "/app", "", "", 0, "", false, map[string]string{"app": "1\n"}},
		{"descriptor not there", "cat < /dev/fd/5", "", "", 1, "/dev/fd/5: No such file or directory", false, nil},
		{"descriptor closed", "cat 3<&- < /dev/fd/3", "", "", 1, "/dev/fd/3: No such file or directory", false, nil},
		{"dup of a closed one", "cat <&9", "", "", 1, "9: Bad file descriptor", false, nil},
		{"error to own stderr", "cat < " + missing, "", "", 1, notFound, false, nil},
		{"error to a file", "cat 2> " + dir + "/err < " + missing, "", "", 1, notFound, true, map[string]string{"err": "gpipe: " + notFound + "\n"}},
		{"error down the pipe", "cat 2>&1 < " + missing + " | cat", "gpipe: " + notFound + "\n", "", 1, notFound, true, nil},
		{"error to stdout", "cat 2>&1 < " + missing, "gpipe: " + notFound + "\n", "", 1, notFound, true, nil},
		{"error to nowhere", "cat 2>&- < " + missing, "", "", 1, notFound, true, nil},
		{"program's error to nowhere", "sh -c cat 2>&- < " + missing, "", "", 1, notFound, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var told []string
			su := setup{opts: Options{OnError: func(err error) { told = append(told, err.Error()) }}}
			r := runSetup(t, tt.spec, su)
			s := r.Statuses[0]
			if r.stdout != tt.stdout || r.stderr != tt.stderr || s.Code != tt.code || s.Reported != tt.reported {
				t.Errorf("stdout %q, stderr %q, status %v, reported %v; want %q, %q, %d, %v", r.stdout, r.stderr, s, s.Reported, tt.stdout, tt.stderr, tt.code, tt.reported)
			}
			if (s.Err == nil) != (tt.err == "") || (s.Err != nil && s.Err.Error() != tt.err) || s.Started != (tt.err == "") {
				t.Errorf("error %v, started %v; want %q", s.Err, s.Started, tt.err)
			}
			if wantTold := tt.err != "" && !tt.reported; (len(told) == 1 && told[0] == tt.err) != wantTold || len(told) > 1 {
				t.Errorf("OnError told %q", told)
			}
			for name, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(got) != want {
					t.Errorf("%s holds %q (%v), want %q", name, got, err, want)
				}
			}
		})
	}
}

// TestInheritedDescriptor: a descriptor gpipe inherited open (not
// close-on-exec) is every stage's, as bash hands it on: a builtin inside
// gpipe copies it by a redirection, a program has it at its number.
func TestInheritedDescriptor(t *testing.T) {
	for _, spec := range []string{"cat <&N", "sh -c 'cat /dev/fd/N'", "gen -n 1 | sh -c 'cat; cat /dev/fd/N'"} {
		t.Run(spec, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n, err := unix.FcntlInt(r.Fd(), unix.F_DUPFD, 40) // not close-on-exec
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(n)
			if _, err := w.WriteString("inherited\n"); err != nil {
				t.Fatal(err)
			}
			w.Close()
			want := "inherited\n"
			if spec[0] == 'g' {
				want = "1\ninherited\n"
			}
			run := runSetup(t, replaceN(spec, n), setup{})
			if run.stdout != want || run.stderr != "" || slices.ContainsFunc(codes(run.Result), func(c int) bool { return c != 0 }) {
				t.Errorf("stdout %q, stderr %q, codes %v; want %q", run.stdout, run.stderr, codes(run.Result), want)
			}
		})
	}
}

func replaceN(spec string, n int) string {
	out := []byte{}
	for i := 0; i < len(spec); i++ {
		if spec[i] == 'N' {
			out = append(out, strconv.Itoa(n)...)
			continue
		}
		out = append(out, spec[i])
	}
	return string(out)
}

// TestFDTableAbove: a ring's descriptors go above every descriptor the
// stage has, closes, inherits or keeps for a redirection its own process
// performs.
func TestFDTableAbove(t *testing.T) {
	null := devNull(t)
	tab := newFDTable(null, nil, null, nil, []int{7})
	if n := tab.addAbove(null); n != 8 {
		t.Errorf("above inherited 7: %d, want 8", n)
	}
	tab.closed[12] = true
	if n := tab.addAbove(null); n != 13 {
		t.Errorf("above closed 12: %d, want 13", n)
	}
	tab.reserve(20)
	tab.reserve(15)
	if n := tab.addAbove(null); n != 21 {
		t.Errorf("above reserved 20: %d, want 21", n)
	}
	if got := closedStd(tab, nil); !slices.Equal(got, []int{1}) {
		t.Errorf("closed standard descriptors %v, want [1]", got)
	}
}
