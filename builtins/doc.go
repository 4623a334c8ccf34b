// Package builtins holds gpipe's built-in stages, each a function over
// plumbing's Source and Sink, registered by name.
package builtins
