package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// plainBool is a bool flag's value without IsBoolFlag, so help shows
// "--jsonl" rather than "--jsonl[=true|false]". It parses as before: pflag
// takes a bare --jsonl as NoOptDefVal ("true"), and --jsonl=false too.
type plainBool struct{ pflag.Value }

// plainBoolHelp wraps the bool flags of c and every command under it, the
// help and version flags included (defined here, before cobra would).
func plainBoolHelp(c *cobra.Command) {
	c.InitDefaultHelpFlag()
	if !c.HasParent() {
		c.InitDefaultVersionFlag()
	}
	for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
		fs.VisitAll(func(f *pflag.Flag) {
			if _, done := f.Value.(plainBool); !done && f.Value.Type() == "bool" {
				f.Value = plainBool{f.Value}
			}
		})
	}
	for _, sub := range c.Commands() {
		plainBoolHelp(sub)
	}
}
