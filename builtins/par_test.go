package builtins

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpipe/gpipe/plumbing"
)

// parInput is lines of random lengths, a few far longer than a block,
// and a last line without a newline.
func parInput(seed uint64, lines int) string {
	r := rand.New(rand.NewPCG(seed, 0))
	var sb strings.Builder
	for i := 0; i < lines; i++ {
		n := r.IntN(100)
		if r.IntN(200) == 0 {
			n = blockSize + r.IntN(3*blockSize)
		}
		sb.WriteString(strings.Repeat(string(rune('a'+i%26)), n))
		sb.WriteByte('\n')
	}
	sb.WriteString("no newline")
	return sb.String()
}

// linesOf is s's lines, sorted, the last one whether it ends in a newline
// or not.
func linesOf(s string) []string {
	l := strings.SplitAfter(s, "\n")
	for i := range l {
		l[i] = strings.TrimSuffix(l[i], "\n")
	}
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	slices.Sort(l)
	return l
}

// TestParDeals: the dealer gives its copies whole lines, every line once;
// one copy gets the input as it is.
func TestParDeals(t *testing.T) {
	input := parInput(1, 3000)
	for _, v := range vias[:1] {
		for _, args := range [][]string{
			{"par", "-j", "1", "cat"},
			{"par", "-j", "3", "--block", "4KiB", "cat"},
			{"par", "-j", "5", "cat"},
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				files := newMemFiles(v, nil)
				var out bytes.Buffer
				if err := runIO(t, v, args, strings.NewReader(input), &out, files); err != nil {
					t.Fatal(err)
				}
				if out.Len() != 0 {
					t.Errorf("the dealer wrote %d bytes to its stdout", out.Len())
				}
				var all []string
				for name, b := range files.out {
					s := b.String()
					if s != "" && !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, "\nno newline") {
						t.Errorf("%s ends in the middle of a line: …%q", name, s[max(0, len(s)-20):])
					}
					if s != "" {
						all = append(all, linesOf(s)...)
					}
				}
				if args[2] == "1" && files.out["/dev/fd/63"].String() != input {
					t.Errorf("one copy got %d bytes, not the input's %d", files.out["/dev/fd/63"].Len(), len(input))
				}
				slices.Sort(all)
				if got, want := all, linesOf(input); !slices.Equal(got, want) {
					t.Errorf("the copies got %d lines, not the input's %d", len(got), len(want))
				}
			})
		}
	}
}

// TestParSkipsAStalledCopy: a copy that takes nothing is dealt no more
// once it holds more than the others: the rest of the input goes to the
// copy that takes it. The stalled copy's writer waits until the dealer
// has read the whole input, so the bound below holds however the
// goroutines are scheduled.
func TestParSkipsAStalledCopy(t *testing.T) {
	const size = 16 << 20
	input := strings.Repeat(strings.Repeat("x", 99)+"\n", size/100)
	allRead := make(chan struct{})
	files := &stallFiles{memFiles: newMemFiles(vias[0], nil), stalled: "/dev/fd/62", until: allRead}
	var out bytes.Buffer
	in := &eofSignal{r: strings.NewReader(input), eof: allRead}
	if err := runIO(t, vias[0], []string{"par", "-j", "2", "cat"}, in, &out, files); err != nil {
		t.Fatal(err)
	}
	fast, slow := files.out["/dev/fd/63"].Len(), files.out["/dev/fd/62"].Len()
	if fast+slow != len(input) {
		t.Fatalf("the copies got %d bytes, want %d", fast+slow, len(input))
	}
	// The stalled copy may hold what its sink buffers before it blocks
	// (as a pipe would), what the fastest may have queued
	// (aheadOfFastest), a unit over it, and a unit in flight.
	if most := plumbing.StreamBufferSize + aheadOfFastest + 2*ParDefaultBlock + blockSize; slow > most {
		t.Errorf("the stalled copy was dealt %d bytes of %d, more than %d", slow, len(input), most)
	}
	t.Logf("the stalled copy got %d bytes, the other %d", slow, fast)
}

// stallFiles is memFiles whose output named stalled takes nothing until
// the channel until is closed.
type stallFiles struct {
	*memFiles
	stalled string
	until   chan struct{}
}

func (f *stallFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	s, err := f.memFiles.Create(name, appendTo)
	if err != nil || name != f.stalled {
		return s, err
	}
	f.mu.Lock()
	b := f.out[name]
	f.mu.Unlock()
	return f.via.sink(&waitWriter{w: b, until: f.until}), nil
}

type waitWriter struct {
	w     io.Writer
	until chan struct{}
}

func (w *waitWriter) Write(p []byte) (int, error) {
	<-w.until
	return w.w.Write(p)
}

// eofSignal closes eof when r reaches its end.
type eofSignal struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofSignal) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

// TestMergePar: the merge of par's copies writes lines whole, long ones
// included, and a last line without a newline gets one only when more
// output follows it.
func TestMergePar(t *testing.T) {
	long := strings.Repeat("L", 3*blockSize+5)
	tests := []struct {
		name  string
		files map[string]string
		want  []string // any one of these
	}{
		{"one input as it is", map[string]string{"f": "a\nb"}, []string{"a\nb"}},
		{"a long last line as it is", map[string]string{"f": "a\n" + long}, []string{"a\n" + long}},
		{"a newline owed", map[string]string{"f": "x", "g": "y\n"}, []string{"y\nx", "x\ny\n"}},
		{"empty", map[string]string{"f": "", "g": ""}, []string{""}},
	}
	for _, v := range vias {
		for _, tt := range tests {
			t.Run(v.name+"/"+tt.name, func(t *testing.T) {
				var names []string
				for name := range tt.files {
					names = append(names, name)
				}
				slices.Sort(names)
				var out bytes.Buffer
				err := runIO(t, v, append([]string{"merge", "--par"}, names...), strings.NewReader(""), &out, newMemFiles(v, tt.files))
				if err != nil {
					t.Fatal(err)
				}
				if got := out.String(); !slices.Contains(tt.want, got) {
					t.Errorf("output %d bytes %q…, want one of %d", len(got), clip(got), len(tt.want))
				}
			})
		}
	}
	// Long lines from several inputs at once stay whole.
	files := map[string]string{}
	var all strings.Builder
	for i := 0; i < 4; i++ {
		s := parInput(uint64(i), 500)
		files[fmt.Sprint(i)] = s
		all.WriteString(s + "\n")
	}
	var out bytes.Buffer
	if err := runIO(t, vias[0], []string{"merge", "--par", "0", "1", "2", "3"}, strings.NewReader(""), &out, newMemFiles(vias[0], files)); err != nil {
		t.Fatal(err)
	}
	if got, want := linesOf(out.String()), linesOf(all.String()); !slices.Equal(got, want) {
		t.Errorf("merged %d lines, want the inputs' %d, each whole", len(got), len(want))
	}
}

// parPipes is a Files whose outputs are real pipes, read to the end by
// goroutines of their own: what par's dealer writes to program copies.
type parPipes struct {
	mu  sync.Mutex
	got map[string]*bytes.Buffer
	wg  sync.WaitGroup
}

func (p *parPipes) Open(name string) (plumbing.Source, error) { return nil, os.ErrNotExist }

func (p *parPipes) Create(name string, _ bool) (plumbing.Sink, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	b := &bytes.Buffer{}
	p.mu.Lock()
	p.got[name] = b
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer r.Close()
		io.Copy(b, r)
	}()
	return plumbing.NewFileSink(w), nil
}

// TestParSplicesAFile: a regular file dealt to pipes goes by splice(2),
// in whole lines, every line once, and leaves the file's offset at its
// end; one copy gets the file as it is.
func TestParSplicesAFile(t *testing.T) {
	input := parInput(2, 3000)
	path := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(path, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, j := range []string{"1", "3"} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		files := &parPipes{got: map[string]*bytes.Buffer{}}
		run, err := Default()["par"].Parse([]string{"-j", j, "--block", "4KiB", "cat"})
		if err != nil {
			t.Fatal(err)
		}
		src := plumbing.NewFileSource(f)
		if _, _, ok := src.RegularFD(); !ok {
			t.Fatal("a regular file's source has no RegularFD")
		}
		if err := run(src, plumbing.NewWriterSink(io.Discard), files); err != nil {
			t.Fatal(err)
		}
		files.wg.Wait()
		if off, _ := f.Seek(0, io.SeekCurrent); off != int64(len(input)) {
			t.Errorf("-j %s: the file's offset is %d, want its end, %d", j, off, len(input))
		}
		f.Close()
		var all []string
		for name, b := range files.got {
			s := b.String()
			if s != "" && !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, "\nno newline") {
				t.Errorf("-j %s: %s ends in the middle of a line", j, name)
			}
			if s != "" {
				all = append(all, linesOf(s)...)
			}
		}
		if j == "1" && files.got["/dev/fd/63"].String() != input {
			t.Errorf("one copy got %d bytes, not the file's %d", files.got["/dev/fd/63"].Len(), len(input))
		}
		slices.Sort(all)
		if want := linesOf(input); !slices.Equal(all, want) {
			t.Errorf("-j %s: the copies got %d lines, not the file's %d", j, len(all), len(want))
		}
	}
}

// TestParOrderedRoundTrip: par -k's dealer frames units to its copies in
// turn, each copy (par-slot) runs its command once per frame, and merge
// --frames takes their frames in turn: the command's output over the
// whole input, byte for byte.
func TestParOrderedRoundTrip(t *testing.T) {
	input := parInput(3, 2000)
	for _, j := range []string{"1", "2", "4"} {
		dealt := newMemFiles(vias[0], nil)
		if err := runIO(t, vias[0], []string{"par", "-k", "-j", j, "--block", "4KiB", "cat"}, strings.NewReader(input), io.Discard, dealt); err != nil {
			t.Fatal(err)
		}
		slotted := map[string]string{}
		var names []string
		for k := 1; ; k++ {
			_, name := ParPort(k)
			b, ok := dealt.out[name]
			if !ok {
				break
			}
			var out bytes.Buffer
			if err := runIO(t, vias[0], []string{"par-slot", "--", "cat"}, bytes.NewReader(b.Bytes()), &out, newMemFiles(vias[0], nil)); err != nil {
				t.Fatal(err)
			}
			slotted[name] = out.String()
			names = append(names, name)
		}
		for _, v := range vias {
			var merged bytes.Buffer
			if err := runIO(t, v, append([]string{"merge", "--frames"}, names...), strings.NewReader(""), &merged, newMemFiles(v, slotted)); err != nil {
				t.Fatal(err)
			}
			if merged.String() != input {
				t.Errorf("-j %s, %s: %d bytes back, not the input's %d", j, v.name, merged.Len(), len(input))
			}
		}
	}
}

// TestMergeFramesLost: a copy that ends before its turn while another
// still has frames is an error that says output was lost; a frame cut
// short is one too.
func TestMergeFramesLost(t *testing.T) {
	frame := func(s string) string {
		var h [8]byte
		h[0], h[7] = byte(len(s)), 0x80 // the last chunk of its frame
		return string(h[:]) + s
	}
	for _, tt := range []struct {
		files map[string]string
		want  string
		err   string
	}{
		{map[string]string{"a": frame("1\n") + frame("3\n"), "b": frame("2\n") + frame("4\n")}, "1\n2\n3\n4\n", ""},
		{map[string]string{"a": frame("1\n") + frame("3\n"), "b": frame("2\n")}, "1\n2\n3\n", ""},
		{map[string]string{"a": frame("1\n"), "b": ""}, "1\n", ""},
		{map[string]string{"a": frame("1\n") + frame("3\n"), "b": ""}, "1\n", "input 2 ended at block 2 while input 1 had more: output lost"},
		{map[string]string{"a": frame("1\n")[:5], "b": ""}, "", "input 1: a block cut short"},
	} {
		var out bytes.Buffer
		err := runIO(t, vias[0], []string{"merge", "--frames", "a", "b"}, strings.NewReader(""), &out, newMemFiles(vias[0], tt.files))
		if errString(err) != tt.err || out.String() != tt.want {
			t.Errorf("%q: %q, %v; want %q, %q", tt.files, out.String(), err, tt.want, tt.err)
		}
	}
}

// TestParOrderedSplicesAFile: par -k over a regular file to pipes frames
// each unit and splices it to the copy whose turn it is; merging the
// frames in turn gives the file back.
func TestParOrderedSplicesAFile(t *testing.T) {
	input := parInput(4, 3000)
	path := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(path, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-k", "-j", "3", "--block", "4KiB", "cat"}, {"-k", "-j", "2", "cat"}} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		files := &parPipes{got: map[string]*bytes.Buffer{}}
		run, err := Default()["par"].Parse(args)
		if err != nil {
			t.Fatal(err)
		}
		if err := run(plumbing.NewFileSource(f), plumbing.NewWriterSink(io.Discard), files); err != nil {
			t.Fatal(err)
		}
		files.wg.Wait()
		f.Close()
		dealt := map[string]string{}
		var names []string
		for k := 1; k <= len(files.got); k++ {
			_, name := ParPort(k)
			dealt[name] = files.got[name].String()
			names = append(names, name)
		}
		var merged bytes.Buffer
		if err := runIO(t, vias[0], append([]string{"merge", "--frames"}, names...), strings.NewReader(""), &merged, newMemFiles(vias[0], dealt)); err != nil {
			t.Fatal(err)
		}
		if merged.String() != input {
			t.Errorf("%v: %d bytes back, not the file's %d", args, merged.Len(), len(input))
		}
	}
}

// TestParLongLineBounded: a line far longer than a unit goes to one copy
// a unit at a time, at that copy's pace: what the dealer holds for it
// stays bounded while another copy has nothing queued (it used to read
// the whole line ahead, waiting only for the copy with the least).
func TestParLongLineBounded(t *testing.T) {
	line := strings.Repeat("x", 16<<20) + "\n"
	files := &slowFiles{memFiles: newMemFiles(vias[0], nil)}
	if err := runIO(t, vias[0], []string{"par", "-j", "2", "cat"}, strings.NewReader(line), io.Discard, files); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, o := range files.stats {
		total += int(o.Bytes)
		if most := int64(plumbing.StreamBufferSize + aheadOfFastest + 2*ParDefaultBlock + blockSize); o.Peak > most {
			t.Errorf("%s queued %d bytes at most, more than %d", o.Output, o.Peak, most)
		}
	}
	if total != len(line) {
		t.Errorf("the copies were given %d bytes, want %d", total, len(line))
	}
}

// slowFiles is memFiles whose outputs take a while over each write.
type slowFiles struct{ *memFiles }

func (f *slowFiles) Create(name string, appendTo bool) (plumbing.Sink, error) {
	if _, err := f.memFiles.Create(name, appendTo); err != nil {
		return nil, err
	}
	f.mu.Lock()
	b := f.out[name]
	f.mu.Unlock()
	return f.via.sink(&slowWriter{w: b}), nil
}

type slowWriter struct{ w io.Writer }

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return w.w.Write(p)
}
