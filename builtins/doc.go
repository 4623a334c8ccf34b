// Package builtins holds gpipe's built-in stages; it is empty until the
// builtins issue lands them.
package builtins
