package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gpipe/gpipe/report"
)

// TestStatsJSONMatchesSchema runs real pipelines with --stats=json (rings,
// pipes, a process substitution, builtins in processes of their own, a
// stage killed by a signal, a broken pipe) and validates every report
// against docs/stats.schema.json, then checks the figures that are exact:
// the bytes a ring carried, the statuses, who has a pid.
func TestStatsJSONMatchesSchema(t *testing.T) {
	schemaText, err := os.ReadFile("../../docs/stats.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(schemaText, &schema); err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	for _, tc := range []struct {
		args  []string
		check func(t *testing.T, r *report.Stats)
	}{
		{[]string{"gen -n 1000 | cat | count"}, func(t *testing.T, r *report.Stats) {
			// 1..1000, one per line: 9*2 + 90*3 + 900*4 + 5 bytes.
			for _, e := range r.Edges {
				if e.Transport != "mem" || !e.Counted || e.Bytes == nil || *e.Bytes != 3893 || *e.Written != 3893 {
					t.Errorf("edge %d: %+v, want 3893 bytes on a mem ring", e.Number, e)
				}
			}
			for _, s := range r.Stages {
				if s.Kind != "builtin" || s.Pid != nil || s.Status == nil || *s.Status != 0 || s.User != nil {
					t.Errorf("stage %d: %+v, want a builtin inside gpipe that exited 0", s.Number, s)
				}
			}
		}},
		{[]string{"--isolate", "gen -n 1000 | cat | count"}, func(t *testing.T, r *report.Stats) {
			for _, e := range r.Edges {
				if e.Transport != "shm" || e.Bytes == nil || *e.Bytes != 3893 {
					t.Errorf("edge %d: %+v, want 3893 bytes on a shm ring", e.Number, e)
				}
			}
			for _, s := range r.Stages {
				if s.Kind != "builtin-process" || s.Pid == nil || s.User == nil || s.MaxRSS == nil || *s.MaxRSS <= 0 {
					t.Errorf("stage %d: %+v, want a builtin in a process with its rusage", s.Number, s)
				}
			}
		}},
		{[]string{"seq 1000 | sh -c 'kill -TERM $$' | cat"}, func(t *testing.T, r *report.Stats) {
			sh := r.Stages[1]
			if sh.Signal == nil || *sh.Signal != "SIGTERM" || *sh.Status != 143 || sh.Reason != "killed by SIGTERM" {
				t.Errorf("sh: %+v, want killed by SIGTERM", sh)
			}
			if r.ExitCode != 143 {
				t.Errorf("exit code %d, want 143", r.ExitCode)
			}
			for _, e := range r.Edges {
				if e.Counted || e.Bytes != nil || e.Note == "" {
					t.Errorf("edge %d: %+v, want a pipe that is not counted, and why", e.Number, e)
				}
			}
		}},
		{[]string{"seq 3000 | tee >(wc -c) | wc -c"}, func(t *testing.T, r *report.Stats) {
			// A fan-out's outputs, each with its reader; the figures
			// depend on timing, the shape does not.
			tee := r.Stages[1]
			if len(tee.Outputs) != 2 {
				t.Fatalf("tee: outputs %+v, want 2", tee.Outputs)
			}
			for i, want := range []struct {
				name   string
				reader int
			}{{"standard output", 4}, {"/dev/fd/63", 3}} {
				o := tee.Outputs[i]
				if o.Output != want.name || o.Reader == nil || *o.Reader != want.reader || o.Spilled != 0 {
					t.Errorf("tee output %d: %+v, want %s read by stage %d, nothing spilled", i, o, want.name, want.reader)
				}
			}
			for _, s := range []report.StageStats{r.Stages[0], r.Stages[2], r.Stages[3]} {
				if s.Outputs != nil {
					t.Errorf("stage %d: outputs %+v, want none (no fan-out)", s.Number, s.Outputs)
				}
			}
		}},
		{[]string{"yes | head -n 1 | paste - <(gen -n 2)"}, func(t *testing.T, r *report.Stats) {
			if r.Stages[0].Reason != "broken pipe" {
				t.Errorf("yes: %+v, want a broken pipe", r.Stages[0])
			}
			if p := r.Stages[3].Parent; p == nil || *p != 3 {
				t.Errorf("gen: %+v, want a process substitution of stage 3", r.Stages[3])
			}
		}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			stdout, stderr := tempFile(t, dir, "out"), tempFile(t, dir, "err")
			args := append([]string{"gpipe", "--stats=json"}, tc.args...)
			stdin, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			run(args, os.Environ(), stdin, stdout, stderr, nil)
			stderrText, err := os.ReadFile(stderr.Name())
			if err != nil {
				t.Fatal(err)
			}
			// The report is the last thing on stderr: one JSON object.
			i := bytes.Index(stderrText, []byte("{\n"))
			if i < 0 {
				t.Fatalf("no JSON on stderr:\n%s", stderrText)
			}
			var doc any
			if err := json.Unmarshal(stderrText[i:], &doc); err != nil {
				t.Fatalf("stderr's report is not JSON: %v\n%s", err, stderrText)
			}
			if errs := validate(schema, schema, doc, "$"); len(errs) > 0 {
				t.Fatalf("the report breaks the schema:\n%s\n%s", strings.Join(errs, "\n"), stderrText[i:])
			}
			var r report.Stats
			if err := json.Unmarshal(stderrText[i:], &r); err != nil {
				t.Fatal(err)
			}
			busiest := 0
			for _, s := range r.Stages {
				if s.Busiest {
					busiest++
				}
			}
			if busiest != 1 {
				t.Errorf("%d stages marked busiest, want 1", busiest)
			}
			tc.check(t, &r)
		})
	}
}

// TestSchemaValidatorRejects shows the validator below is not a yes-man:
// each broken document is refused.
func TestSchemaValidatorRejects(t *testing.T) {
	var schema map[string]any
	text, err := os.ReadFile("../../docs/stats.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(text, &schema); err != nil {
		t.Fatal(err)
	}
	good := `{"version":1,"exit_code":0,"signal":null,"wall_seconds":0.1,"stages":[],"edges":[]}`
	var doc any
	json.Unmarshal([]byte(good), &doc)
	if errs := validate(schema, schema, doc, "$"); len(errs) > 0 {
		t.Fatalf("a good document refused: %v", errs)
	}
	for _, bad := range []string{
		`{"version":2,"exit_code":0,"signal":null,"wall_seconds":0.1,"stages":[],"edges":[]}`,
		`{"version":1,"exit_code":-1,"signal":null,"wall_seconds":0.1,"stages":[],"edges":[]}`,
		`{"version":1,"exit_code":0,"signal":3,"wall_seconds":0.1,"stages":[],"edges":[]}`,
		`{"version":1,"exit_code":0,"signal":null,"wall_seconds":0.1,"stages":[],"edges":[],"extra":1}`,
		`{"version":1,"exit_code":0,"signal":null,"wall_seconds":0.1,"stages":[{}],"edges":[]}`,
		`{"version":1,"exit_code":0,"signal":null,"stages":[],"edges":[]}`,
		`{"version":1,"exit_code":0,"signal":null,"wall_seconds":0.1,"stages":[],"edges":[{"number":1,"from":{"stage":1,"fd":1},"to":{"stage":2,"fd":0},"transport":"carrier pigeon","counted":false,"bytes":null,"bytes_written":null,"bytes_per_second":null,"writer_blocked_seconds":null,"reader_starved_seconds":null,"fullest":false}]}`,
	} {
		var doc any
		if err := json.Unmarshal([]byte(bad), &doc); err != nil {
			t.Fatal(err)
		}
		if errs := validate(schema, schema, doc, "$"); len(errs) == 0 {
			t.Errorf("accepted: %s", bad)
		}
	}
}

func tempFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// validate checks doc against the part of JSON Schema (2020-12) that
// docs/stats.schema.json uses: type (one or a list), const, enum,
// minimum, maximum, pattern, required, properties, additionalProperties
// false, items and local $refs. It returns one message per violation;
// a keyword it does not know fails, so the schema cannot outgrow it
// unnoticed.
func validate(root, schema map[string]any, doc any, at string) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, at+": "+fmt.Sprintf(format, args...))
	}
	keys := make([]string, 0, len(schema))
	for k := range schema {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := schema[k]
		switch k {
		case "$schema", "$id", "title", "description", "$defs":
		case "$ref":
			ref, _ := v.(string)
			name, ok := strings.CutPrefix(ref, "#/$defs/")
			sub, found := root["$defs"].(map[string]any)[name].(map[string]any)
			if !ok || !found {
				fail("unknown $ref %q", ref)
				continue
			}
			errs = append(errs, validate(root, sub, doc, at)...)
		case "type":
			var types []string
			switch tv := v.(type) {
			case string:
				types = []string{tv}
			case []any:
				for _, x := range tv {
					types = append(types, x.(string))
				}
			}
			if !slices.Contains(types, jsonType(doc)) && !(jsonType(doc) == "integer" && slices.Contains(types, "number")) {
				fail("a %s, want %v", jsonType(doc), types)
			}
		case "const":
			if fmt.Sprint(doc) != fmt.Sprint(v) {
				fail("%v, want %v", doc, v)
			}
		case "enum":
			if !slices.ContainsFunc(v.([]any), func(x any) bool { return fmt.Sprint(x) == fmt.Sprint(doc) }) {
				fail("%v is not one of %v", doc, v)
			}
		case "minimum":
			if n, ok := doc.(float64); ok && n < v.(float64) {
				fail("%v is below %v", n, v)
			}
		case "maximum":
			if n, ok := doc.(float64); ok && n > v.(float64) {
				fail("%v is above %v", n, v)
			}
		case "pattern":
			if s, ok := doc.(string); ok && !regexp.MustCompile(v.(string)).MatchString(s) {
				fail("%q does not match %s", s, v)
			}
		case "required":
			if obj, ok := doc.(map[string]any); ok {
				for _, name := range v.([]any) {
					if _, has := obj[name.(string)]; !has {
						fail("%s is missing", name)
					}
				}
			}
		case "properties":
			if obj, ok := doc.(map[string]any); ok {
				props := v.(map[string]any)
				for name, val := range obj {
					if sub, known := props[name].(map[string]any); known {
						errs = append(errs, validate(root, sub, val, at+"."+name)...)
					}
				}
			}
		case "additionalProperties":
			obj, ok := doc.(map[string]any)
			props, _ := schema["properties"].(map[string]any)
			if ok && v == false {
				for name := range obj {
					if _, known := props[name]; !known {
						fail("%s is not in the schema", name)
					}
				}
			}
		case "items":
			if arr, ok := doc.([]any); ok {
				for i, x := range arr {
					errs = append(errs, validate(root, v.(map[string]any), x, fmt.Sprintf("%s[%d]", at, i))...)
				}
			}
		default:
			fail("schema keyword %q is not supported by this validator", k)
		}
	}
	return errs
}

// jsonType is the JSON Schema type of a decoded value.
func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}
