package stage

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gpipe/gpipe/parser"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exe := write("tool", 0o755)
	plain := write("plain", 0o644)
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "plain"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path string
		want       string
		code       int
		text       string
	}{
		{"tool", dir, exe, 0, ""},
		{"nosuch", dir, "", 127, "command not found"},
		{"plain", dir, "", 126, "Permission denied"},
		{"plain", dir + ":" + other, filepath.Join(other, "plain"), 0, ""},
		{exe, "", exe, 0, ""},
		{plain, "", "", 126, "Permission denied"},
		{dir, "", "", 126, "Is a directory"},
		{filepath.Base(dir), filepath.Dir(dir), "", 127, "command not found"}, // a directory on PATH is skipped
		{filepath.Join(dir, "missing"), "", "", 127, "No such file or directory"},
	}
	for _, tt := range tests {
		got, err := lookPath("", tt.name, tt.path)
		if tt.code == 0 {
			if err != nil || got != tt.want {
				t.Errorf("lookPath(%q, %q) = %q, %v; want %q", tt.name, tt.path, got, err, tt.want)
			}
			continue
		}
		if err == nil || err.Code != tt.code || err.Text != tt.text {
			t.Errorf("lookPath(%q, %q) error = %+v; want code %d %q", tt.name, tt.path, err, tt.code, tt.text)
		}
	}
}

func TestResolveUsesTheStagePath(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "mytool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	g := &parser.Graph{Stages: []*parser.Stage{
		{ID: 0, Args: []string{"mytool"}, Env: []string{"PATH=" + dir}},
	}}
	cmds, err := Resolve(g, []string{"PATH=/nonexistent", "HOME=/h"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cmds[0].Path != tool {
		t.Errorf("Path = %q, want %q", cmds[0].Path, tool)
	}
	if want := []string{"PATH=" + dir, "HOME=/h"}; !slices.Equal(cmds[0].Env, want) {
		t.Errorf("Env = %q, want %q", cmds[0].Env, want)
	}

	g.Stages[0].Env = nil
	_, err = Resolve(g, []string{"PATH=/nonexistent"}, nil)
	var le *LookupError
	if !errors.As(err, &le) || err.Error() != "mytool: command not found" || le.Stage != "stage 1 (mytool)" || le.Code != 127 {
		t.Errorf("Resolve error = %#v, want mytool: command not found, of stage 1 (mytool), 127", err)
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"A=1", "B=2", "C=3"}
	got := mergeEnv(base, []string{"B=x", "D=4", "B=y"})
	want := []string{"A=1", "B=y", "C=3", "D=4"}
	if !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
	if !slices.Equal(base, []string{"A=1", "B=2", "C=3"}) {
		t.Errorf("mergeEnv changed its base: %q", base)
	}
}
