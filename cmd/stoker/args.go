package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/cmd/internal/cli"
)

// oneURL is the Args of a command that takes one dataset URL. Several
// arguments that look like a brace list the shell expanded get the quoted
// URL to type instead.
func oneURL(c *cobra.Command, args []string) error {
	switch {
	case len(args) == 1:
		return nil
	case len(args) == 0:
		return cli.Usagef(c, "want a dataset URL (s3://bucket/train/, file:///data/train/, or a brace list in quotes: 's3://bucket/train-{000000..000099}.tar')")
	}
	if brace, ok := unexpandBraces(args); ok {
		return cli.Usagef(c, "want one dataset URL, got %d arguments (%s ... %s): the shell expanded a brace list; quote the URL so stoker expands it: '%s'",
			len(args), args[0], args[len(args)-1], brace)
	}
	return cli.Usagef(c, "want exactly one dataset URL, got %d: %q", len(args), args)
}

// unexpandBraces reports whether args look like one word the shell
// expanded from braces: two or more URLs with the same scheme, the same
// beginning and the same end, differing in the middle. It returns that
// word: "s3://b/train-{000000..000099}.tar" for consecutive numbers,
// "s3://b/{train,val}/" for anything else.
func unexpandBraces(args []string) (string, bool) {
	if len(args) < 2 {
		return "", false
	}
	scheme, _, ok := strings.Cut(args[0], "://")
	if !ok {
		return "", false
	}
	prefix, suffix := args[0], args[0]
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, scheme+"://") {
			return "", false
		}
		prefix = commonPrefix(prefix, a)
		suffix = commonSuffix(suffix, a)
	}
	if len(prefix) <= len(scheme)+len("://") {
		return "", false // only the scheme in common: separate datasets
	}
	for _, a := range args { // the end may not reach into the beginning
		if room := len(a) - len(prefix); len(suffix) > room {
			suffix = suffix[len(suffix)-room:]
		}
	}
	// Digits shared by every number belong to the range: train-0000{00..99}
	// reads better as train-{000000..000099}.
	np, ns := strings.TrimRight(prefix, "0123456789"), strings.TrimLeft(suffix, "0123456789")
	if r, ok := numberRange(middles(args, np, ns)); ok && len(np) > len(scheme)+len("://") {
		return np + r + ns, true
	}
	words := middles(args, prefix, suffix)
	if len(words) > 8 {
		words = append(words[:8:8], "...")
	}
	return prefix + "{" + strings.Join(words, ",") + "}" + suffix, true
}

// middles is what each arg holds between prefix and suffix.
func middles(args []string, prefix, suffix string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a[len(prefix) : len(a)-len(suffix)]
	}
	return out
}

// numberRange is "{first..last}" when the words are consecutive numbers.
func numberRange(words []string) (string, bool) {
	prev := -1
	for i, w := range words {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 || w == "" || (i > 0 && n != prev+1) {
			return "", false
		}
		prev = n
	}
	return "{" + words[0] + ".." + words[len(words)-1] + "}", true
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

func commonSuffix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return a[len(a)-n:]
}

// noArgs is the Args of a command that takes only flags.
var noArgs = cli.NoArgs

// maxOneURL is the Args of a command that takes a dataset URL or none.
func maxOneURL(c *cobra.Command, args []string) error {
	if len(args) <= 1 {
		return nil
	}
	return oneURL(c, args)
}
