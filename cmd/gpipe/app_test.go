package main

import (
	"testing"

	"github.com/urfave/cli/v2"
)

// TestDefaultSettings: "gpipe SPEC" runs with defaultSettings, without
// urfave/cli (see plainSpec); they must be what urfave/cli makes of the
// flags' defaults.
func TestDefaultSettings(t *testing.T) {
	a := &app{sources: map[string]string{}}
	cliApp := a.newApp()
	var got settings
	cliApp.Action = func(c *cli.Context) error {
		var err error
		got, err = settingsFrom(c)
		return err
	}
	if err := cliApp.Run([]string{"gpipe", "/bin/true"}); err != nil {
		t.Fatal(err)
	}
	if want := defaultSettings(); got != want {
		t.Errorf("urfave/cli's defaults are %+v, defaultSettings %+v", got, want)
	}
}

// TestPlainSpec: what takes the way around urfave/cli, and what does not.
func TestPlainSpec(t *testing.T) {
	for _, c := range []struct {
		args  []string
		plain bool
	}{
		{[]string{"seq 3 | cat"}, true},
		{[]string{"h"}, true},
		{[]string{}, false},
		{[]string{""}, false},
		{[]string{"check"}, false},
		{[]string{"help"}, false},
		{[]string{"--status", "cat"}, false},
		{[]string{"-h"}, false},
		{[]string{"--"}, false},
		{[]string{"-f", "x.gp"}, false},
		{[]string{"cat", "extra"}, false},
	} {
		if got := plainSpec(c.args); got != c.plain {
			t.Errorf("plainSpec(%q) = %v, want %v", c.args, got, c.plain)
		}
	}
}
