package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// OneDashLongFlags rewrites -name and -name=value to --name and
// --name=value where name is a long flag of root or of any command under
// it, as Go's flag package, which stoker and stokerd used before, took
// both. Arguments after "--" are left alone, and so is anything that is
// not a known flag's name (a one-letter shorthand, a negative number).
func OneDashLongFlags(root *cobra.Command, args []string) []string {
	known := map[string]bool{"help": true, "version": true} // cobra adds these as it runs
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && known[name] {
			out[i] = "-" + a
		}
	}
	return out
}
