package parser

import "fmt"

// Error is a problem in the source, with its position. Its message reads
// "name:line:col: text", the way shells and compilers print them, or
// "name: text" for a problem outside the source (a file's parameter given
// on the command line), whose Pos is zero.
type Error struct {
	Name string // the source's name: "spec" or a file name
	Pos  Pos
	Text string // lowercase, no trailing period
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 { // a problem with no place in the source
		return e.Name + ": " + e.Text
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Pos.Line, e.Pos.Col, e.Text)
}
