package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/shuffle"
)

// planOptions are the flags of `stoker plan`.
type planOptions struct {
	shards, samples int
	seed, epoch     uint64
	batch, window   int
	noShuffle       bool
	order           string
}

func newPlanCmd() *cobra.Command {
	o := &planOptions{}
	c := &cobra.Command{
		Use:   "plan",
		Short: "Plan an epoch of a dataset shape (no server) and print its shuffle quality",
		Long: `Plan one epoch of a dataset of --shards shards of --samples samples, with
no server, and print the plan's cost and its shuffle quality; --order
writes the epoch's order, for comparing it with other loaders'.`,
		Example: `  stoker plan --shards 1024 --samples 256 --shuffle-window 32 --batch 256`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runPlan(o, c.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.IntVar(&o.shards, "shards", 1024, "number of shards")
	fs.IntVar(&o.samples, "samples", 256, "samples per shard")
	fs.Uint64Var(&o.seed, "seed", 0, "shuffle seed")
	fs.Uint64Var(&o.epoch, "epoch", 0, "epoch")
	fs.IntVar(&o.batch, "batch", 256, "batch size the quality is measured over")
	fs.BoolVar(&o.noShuffle, "no-shuffle", false, "file order")
	fs.StringVar(&o.order, "order", "", "write the order to this `file`: each position as two little-endian uint32 (shard, sample)")
	fs.Var(windowValue{&o.window}, "shuffle-window", "shards shuffled together: a number, 0 for the default, or all")
	return c
}

// runPlan plans one epoch of a dataset shape, with no server, and prints
// the plan's cost and its shuffle quality (shuffle.Quality); --order
// writes the epoch's order, for comparing it with other loaders'.
func runPlan(o *planOptions, out io.Writer) error {
	window := o.window
	if window < 0 {
		window = shuffle.WindowAll
	}
	if o.shards < 0 || o.samples < 0 {
		return errors.New("plan: --shards and --samples must not be negative")
	}
	counts := make([]int, o.shards)
	for i := range counts {
		counts[i] = o.samples
	}
	t := time.Now()
	p, err := shuffle.NewPlan(counts, shuffle.Settings{Seed: o.seed, Epoch: o.epoch, Window: window, NoShuffle: o.noShuffle})
	if err != nil {
		return err
	}
	n, _ := p.Total()
	seq := make([]shuffle.Ref, n)
	for i := range seq {
		seq[i] = p.At(i)
	}
	took := time.Since(t)
	q, err := shuffle.MeasureOrder(counts, seq, o.batch)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "plan v%d: %d shards x %d samples, window %d shards (%d windows), seed %d, epoch %d: %s for every position\n",
		shuffle.PlanVersion, o.shards, o.samples, p.WindowSize(), p.Windows(), o.seed, o.epoch, took.Round(time.Microsecond))
	fmt.Fprintf(out, "quality over batches of %d: diversity %.3f, spread %.3f\n", o.batch, q.Diversity, q.Spread)
	if o.order == "" {
		return nil
	}
	f, err := os.Create(o.order)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var b [8]byte
	for _, r := range seq {
		binary.LittleEndian.PutUint32(b[:4], uint32(r.Shard))
		binary.LittleEndian.PutUint32(b[4:], uint32(r.Sample))
		if _, err := w.Write(b[:]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
