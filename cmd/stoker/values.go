package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/clients/stoker"
)

// windowValue is a --shuffle-window flag: a number of shards, 0 for the
// server's default, or "all" (stoker.WindowAll).
type windowValue struct{ w *int }

func (v windowValue) String() string {
	if v.w == nil {
		return "0"
	}
	if *v.w == stoker.WindowAll {
		return "all"
	}
	return strconv.Itoa(*v.w)
}

func (v windowValue) Set(s string) error {
	w, err := parseWindow(s)
	if err != nil {
		return err
	}
	*v.w = w
	return nil
}

func (windowValue) Type() string { return "N|all" }

// columnsValue is --columns: names separated by commas.
type columnsValue struct{ cols *[]string }

func (v columnsValue) String() string {
	if v.cols == nil {
		return ""
	}
	return strings.Join(*v.cols, ",")
}

func (v columnsValue) Set(s string) error {
	*v.cols = splitColumns(s)
	return nil
}

func (columnsValue) Type() string { return "names" }

// fixedCompletions completes a flag's value from a fixed list.
func fixedCompletions(values ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}
