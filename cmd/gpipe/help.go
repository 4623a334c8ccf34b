package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gpipe/gpipe/builtins"
	"github.com/gpipe/gpipe/plumbing"
)

// helpCommand is "gpipe help [BUILTIN]": the builtins, or one builtin's
// own help. It is the way to a builtin's help when its name is a
// coreutils program's too ("cat --help" in a pipeline is coreutils' cat's
// help, as in bash).
func (a *app) helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "list the builtins, or print one builtin's own help",
		ArgsUsage: "[BUILTIN]",
		Action:    func(c *cli.Context) error { return a.help(c.Args().Slice()) },
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{msg: "help: " + err.Error()}
		},
	}
}

func (a *app) help(args []string) error {
	reg := builtins.Default()
	names := make([]string, 0, len(reg))
	for name, b := range reg {
		if b.Hidden {
			delete(reg, name)
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	switch len(args) {
	case 0:
		var sb strings.Builder
		sb.WriteString("The builtins (gpipe help BUILTIN for one):\n")
		for _, name := range names {
			fmt.Fprintf(&sb, "  %s\n", reg[name].Synopsis)
		}
		_, err := a.stdout.WriteString(sb.String())
		return err
	case 1:
	default:
		return &usageError{msg: "help: want one BUILTIN, got " + fmt.Sprint(len(args)) + " arguments"}
	}
	b := reg[args[0]]
	if b == nil {
		return &usageError{msg: fmt.Sprintf("help: no builtin %q; the builtins: %s", args[0], strings.Join(names, ", "))}
	}
	// The sink owns what it writes to and closes it: a copy of stdout.
	fd, err := unix.FcntlInt(a.stdout.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return fmt.Errorf("help: %w", err)
	}
	out := plumbing.NewFileSink(os.NewFile(uintptr(fd), a.stdout.Name()))
	err = b.Help()(nil, out, builtins.OSFiles{})
	return errors.Join(err, out.Close())
}
