package gpipetest

import (
	"os/exec"
	"reflect"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// What testscript keeps to itself. Its API gives a command neither the
// script's whole environment (only Getenv, by name) nor the names of the
// commands "exec … &name&" started (BackgroundCmds lists them without).
// Both are read here from its state, by reflection, read-only, from the
// script's own goroutine (the only one that changes them); the package's
// tests fail if a version of testscript keeps them otherwise, and each
// function says what it does then.

// scriptEnv is the script's environment as exec would give it to a
// program, with the changes of its "env" lines; ok is false when this
// version of testscript does not keep it where this package looks.
// testscript appends a variable that an "env" line sets again, and
// os/exec keeps the last of the entries of one name; so does scriptEnv,
// where the first is.
func scriptEnv(ts *testscript.TestScript) (env []string, ok bool) {
	v := reflect.ValueOf(ts).Elem().FieldByName("env")
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.String {
		return nil, false
	}
	at := map[string]int{}
	for i := range v.Len() {
		kv := v.Index(i).String()
		name, _, _ := strings.Cut(kv, "=")
		if k, ok := at[name]; ok {
			env[k] = kv
			continue
		}
		at[name] = len(env)
		env = append(env, kv)
	}
	return env, true
}

// execBackground is the command that "exec … &name&" started and no
// "wait" has waited for yet: nil when there is none of that name; an
// error when this version of testscript does not keep the names where
// this package looks.
func execBackground(ts *testscript.TestScript, name string) (*exec.Cmd, error) {
	cmds := ts.BackgroundCmds()
	v := reflect.ValueOf(ts).Elem().FieldByName("background")
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Len() != len(cmds) {
		return nil, errHiddenNames
	}
	for i := range v.Len() {
		f := v.Index(i)
		if f.Kind() == reflect.Struct {
			f = f.FieldByName("name")
		}
		if f.Kind() != reflect.String {
			return nil, errHiddenNames
		}
		if f.String() == name {
			return cmds[i], nil
		}
	}
	return nil, nil
}

type hiddenError string

func (e hiddenError) Error() string { return string(e) }

const errHiddenNames = hiddenError("this version of testscript does not say which command exec named so: start it with pipe")
