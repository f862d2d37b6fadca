package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// UsageError is a command line the command cannot take: an unknown flag
// or command, a flag's bad value, the wrong arguments. It ends the
// process with status 2 and a pointer to the command's help.
type UsageError struct {
	Cmd *cobra.Command
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef is a UsageError of cmd.
func Usagef(cmd *cobra.Command, format string, args ...any) error {
	return &UsageError{Cmd: cmd, Err: fmt.Errorf(format, args...)}
}

// Setup sets what stoker and stokerd share on root: --version, errors
// printed once by Run (not by cobra, with usage, on every failure), flag
// errors as UsageErrors, and help that keeps each command's flags in the
// order they are defined.
func Setup(root *cobra.Command) {
	root.Version = Version()
	root.SetVersionTemplate(VersionLine(root.Name()))
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &UsageError{Cmd: c, Err: err} })
	root.SuggestionsMinimumDistance = 2
}

// Run executes root with args and returns the exit status: 0, 1 for a
// failure (printed as "name: error"), 2 for a usage error (with where to
// find the help). explain may reword an error for the command that ran
// (nil: as it is).
func Run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer, explain func(*cobra.Command, error) error) int {
	plainBoolHelp(root)
	root.SetArgs(OneDashLongFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nSee '%s --help'.\n", root.Name(), err, ue.Cmd.CommandPath())
		return 2
	}
	if cmd != nil && explain != nil {
		err = explain(cmd, err)
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	return 1
}

// UnknownCommand is the Args of a root whose work is done by its
// subcommands: any argument left is a command it does not have.
func UnknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %s?)", s[0])
	}
	return Usagef(c, "unknown command %q%s", args[0], hint)
}

// NoArgs is the Args of a command that takes only flags.
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef(c, "%s takes no arguments, only flags; got %q", c.CommandPath(), args)
	}
	return nil
}
