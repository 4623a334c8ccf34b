package builtins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gpipe/gpipe/plumbing"
)

func sinkBuiltin() *Builtin {
	b := &Builtin{
		Name:     "sink",
		Synopsis: "sink [FILE]",
		Summary:  "Consume all input: into FILE (created or truncated) if given, else discard it.",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		switch fs.NArg() {
		case 0:
			return func(in plumbing.Source, _ plumbing.Sink, _ Files) error {
				return each(in, func([]byte) error { return nil })
			}, nil
		case 1:
			name := fs.Arg(0)
			return func(in plumbing.Source, _ plumbing.Sink, files Files) error {
				out, err := files.Create(name, false)
				if err != nil {
					return err
				}
				err = each(in, func(p []byte) error { return plumbing.Write(out, p) })
				return plumbing.CloseAfter(out, err)
			}, nil
		}
		return nil, usagef(b.Name, "want at most one FILE, got %d arguments", fs.NArg())
	}
	return b
}

func countBuiltin() *Builtin {
	b := &Builtin{
		Name:     "count",
		Synopsis: "count [-l | -c]",
		Summary:  "Print the number of lines (-l, the default: newlines, like wc -l) or bytes (-c) of the input.",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		lines := fs.Bool("l", false, "count lines (the default)")
		byteCount := fs.Bool("c", false, "count bytes")
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		if fs.NArg() > 0 {
			return nil, usagef(b.Name, "unexpected argument %q", fs.Arg(0))
		}
		if *lines && *byteCount {
			return nil, usagef(b.Name, "-l and -c do not go together")
		}
		return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
			var n int
			err := each(in, func(p []byte) error {
				if *byteCount {
					n += len(p)
				} else {
					n += bytes.Count(p, []byte{'\n'})
				}
				return nil
			})
			if err != nil {
				return err
			}
			return plumbing.Write(out, append(strconv.AppendInt(nil, int64(n), 10), '\n'))
		}, nil
	}
	return b
}

func headBuiltin() *Builtin {
	b := &Builtin{
		Name:     "head",
		Namesake: true,
		Synopsis: "head [-n N | -N | -c N | -n -0 | -c -0]",
		Summary:  "Pass the first N lines (default 10) or bytes, then stop reading, so that upstream stops at once.",
	}
	b.Parse = func(args []string) (Run, error) {
		o, help, err := parseHead(b, args)
		switch {
		case help != nil || err != nil:
			return help, err
		case o.all:
			return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
				return headPass(in, out, func(p []byte) (int, bool) { return len(p), false }, false)
			}, nil
		case o.bytes:
			limit := o.limit
			return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
				return headPass(in, out, func(p []byte) (int, bool) {
					n := int(min(int64(len(p)), limit))
					limit -= int64(n)
					return n, limit == 0
				}, limit == 0)
			}, nil
		}
		limit := o.limit
		return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
			return headPass(in, out, func(p []byte) (int, bool) {
				taken := 0
				for limit > 0 {
					i := bytes.IndexByte(p[taken:], '\n')
					if i < 0 {
						return len(p), false
					}
					taken += i + 1
					limit--
				}
				return taken, true
			}, limit == 0)
		}, nil
	}
	// -c N writes N bytes, or its whole input if that is shorter; -n -0
	// and -c -0 the whole input; a number of lines, unknown.
	b.Size = func(args []string, input int64) int64 {
		o, help, err := parseHead(b, args)
		switch {
		case help != nil || err != nil:
			return -1
		case o.all:
			return input
		case o.bytes && input >= 0:
			return min(o.limit, input)
		case o.bytes:
			return o.limit
		}
		return -1
	}
	return b
}

// headOptions are head's arguments, parsed: the first limit lines, or
// bytes, or all of the input (-n -0, -c -0).
type headOptions struct {
	bytes, all bool
	limit      int64
}

// parseHead parses head's arguments (help is --help's Run).
func parseHead(b *Builtin, args []string) (o headOptions, help Run, err error) {
	if len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' && strings.Trim(args[0][1:], "0123456789") == "" {
		// "head -5" is the old spelling of "head -n 5".
		args = append([]string{"-n", args[0][1:]}, args[1:]...)
	}
	fs, parse := flags(b)
	lines := fs.String("n", "", "pass the first N lines")
	size := fs.String("c", "", "pass the first N bytes (K, M, G suffixes)")
	if help, err := parse(args); help != nil || err != nil {
		return o, help, err
	}
	if fs.NArg() > 0 {
		return o, nil, usagef(b.Name, "unexpected argument %q", fs.Arg(0))
	}
	if *lines != "" && *size != "" {
		return o, nil, usagef(b.Name, "-n and -c do not go together")
	}
	// GNU head -n -K and -c -K pass all but the last K lines or
	// bytes; -0 is everything. Only that one is the builtin's: for
	// K > 0, the usage error runs coreutils' head instead.
	for _, v := range []*string{lines, size} {
		if rest, neg := strings.CutPrefix(*v, "-"); neg {
			if k, err := ParseSize(rest); err != nil || k != 0 {
				return o, nil, usagef(b.Name, "all but the last %s: not supported", rest)
			}
			return headOptions{all: true}, nil, nil
		}
	}
	if *size != "" {
		limit, err := ParseSize(*size)
		if err != nil {
			return o, nil, usagef(b.Name, "-c: %v", err)
		}
		return headOptions{bytes: true, limit: limit}, nil, nil
	}
	o.limit = 10
	if *lines != "" {
		n, err := strconv.ParseInt(*lines, 10, 64)
		if err != nil || n < 0 {
			return o, nil, usagef(b.Name, "-n: invalid number of lines %q", *lines)
		}
		o.limit = n
	}
	return o, nil, nil
}

// headPass passes the prefix of the input that take selects, chunk by
// chunk, until take says it is done. It then closes its input at once,
// so that upstream learns that nobody reads any more.
func headPass(in plumbing.Source, out plumbing.Sink, take func(p []byte) (n int, done bool), done bool) error {
	defer in.Close()
	for !done {
		buf, err := in.Peek(1)
		if len(buf) > 0 {
			var n int
			n, done = take(buf)
			if werr := plumbing.Write(out, buf[:n]); werr != nil {
				return werr
			}
			in.Release(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func catBuiltin() *Builtin {
	b := &Builtin{
		Name:     "cat",
		Namesake: true,
		Synopsis: "cat",
		Summary:  "Pass the input through unchanged.",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		if fs.NArg() > 0 {
			return nil, usagef(b.Name, "takes no FILE arguments; use cat from PATH for files (command cat %s)", fs.Arg(0))
		}
		return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
			return each(in, func(p []byte) error { return plumbing.Write(out, p) })
		}, nil
	}
	// cat writes what it reads.
	b.Size = func(args []string, input int64) int64 {
		if _, err := b.Parse(args); err != nil || len(args) > 0 {
			return -1 // --help, say
		}
		return input
	}
	return b
}

func sha256Builtin() *Builtin {
	b := &Builtin{
		Name:     "sha256",
		Synopsis: "sha256",
		Summary:  "Print the SHA-256 of the input in hex, like sha256sum without the name.",
	}
	b.Parse = func(args []string) (Run, error) {
		fs, parse := flags(b)
		if help, err := parse(args); help != nil || err != nil {
			return help, err
		}
		if fs.NArg() > 0 {
			return nil, usagef(b.Name, "unexpected argument %q", fs.Arg(0))
		}
		return func(in plumbing.Source, out plumbing.Sink, _ Files) error {
			h := sha256.New()
			if err := each(in, func(p []byte) error { h.Write(p); return nil }); err != nil {
				return err
			}
			return plumbing.Write(out, fmt.Appendf(nil, "%s\n", hex.EncodeToString(h.Sum(nil))))
		}, nil
	}
	return b
}

// each calls f with the input in order, in place, as it arrives.
func each(in plumbing.Source, f func(p []byte) error) error {
	for {
		buf, err := in.Peek(1)
		if len(buf) > 0 {
			if ferr := f(buf); ferr != nil {
				return ferr
			}
			in.Release(len(buf))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
