package main

import "strings"

// pathOf is the PATH in env: where --svg looks for Graphviz's dot.
func pathOf(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return ""
}
