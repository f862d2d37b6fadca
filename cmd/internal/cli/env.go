package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// EnvName is the environment variable that sets a flag: the prefix, then
// the flag's name in capitals with dashes as underscores
// (STOKERD, memory-cache: STOKERD_MEMORY_CACHE).
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv sets every flag of fs that the command line left unset from
// its environment variable (EnvName), when lookup finds one. A list flag
// (a pflag.SliceValue, such as a repeatable flag) takes a comma-separated
// list. A value the flag refuses is an error naming the variable. Flags
// named in skip are left alone (help, version, completion's own).
func BindEnv(fs *pflag.FlagSet, prefix string, lookup func(string) (string, bool), skip ...string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || slices.Contains(skip, f.Name) {
			return
		}
		name := EnvName(prefix, f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		var values []string
		if _, list := f.Value.(pflag.SliceValue); list {
			values = splitList(v)
		} else {
			values = []string{v}
		}
		if e := set(fs, f, values); e != nil {
			err = fmt.Errorf("$%s=%q: %w", name, v, e)
		}
	})
	return err
}

// set gives a flag its value (or values, for a list flag, replacing its
// default) and marks it set, so a lower source does not override it.
func set(fs *pflag.FlagSet, f *pflag.Flag, values []string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if err := sv.Replace(values); err != nil {
			return err
		}
		f.Changed = true
		return nil
	}
	if len(values) != 1 {
		return fmt.Errorf("--%s takes one value, got %d", f.Name, len(values))
	}
	return fs.Set(f.Name, values[0]) // marks it Changed
}

// splitList splits "a, b,c" into its non-empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
