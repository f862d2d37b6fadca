package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stoker-data/stoker/shuffle"
)

// runPlan plans one epoch of a dataset shape, with no server, and prints
// the plan's cost and its shuffle quality (shuffle.Quality); --order
// writes the epoch's order, for comparing it with other loaders'.
func runPlan(_ context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	shards := fs.Int("shards", 1024, "number of shards")
	samples := fs.Int("samples", 256, "samples per shard")
	seed := fs.Uint64("seed", 0, "shuffle seed")
	epoch := fs.Uint64("epoch", 0, "epoch")
	batch := fs.Int("batch", 256, "batch size the quality is measured over")
	noShuffle := fs.Bool("no-shuffle", false, "file order")
	order := fs.String("order", "", "write the order here: each position as two little-endian uint32 (shard, sample)")
	var window int
	fs.Func("shuffle-window", "shards shuffled together: a number, 0 for the default, or all", func(v string) (err error) {
		window, err = parseWindow(v)
		if window < 0 {
			window = shuffle.WindowAll
		}
		return err
	})
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errors.New("plan: takes no arguments, only flags")
	}
	if *shards < 0 || *samples < 0 {
		return errors.New("plan: --shards and --samples must not be negative")
	}
	counts := make([]int, *shards)
	for i := range counts {
		counts[i] = *samples
	}
	t := time.Now()
	p, err := shuffle.NewPlan(counts, shuffle.Settings{Seed: *seed, Epoch: *epoch, Window: window, NoShuffle: *noShuffle})
	if err != nil {
		return err
	}
	n, _ := p.Total()
	seq := make([]shuffle.Ref, n)
	for i := range seq {
		seq[i] = p.At(i)
	}
	took := time.Since(t)
	q, err := shuffle.MeasureOrder(counts, seq, *batch)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "plan v%d: %d shards x %d samples, window %d shards (%d windows), seed %d, epoch %d: %s for every position\n",
		shuffle.PlanVersion, *shards, *samples, p.WindowSize(), p.Windows(), *seed, *epoch, took.Round(time.Microsecond))
	fmt.Fprintf(out, "quality over batches of %d: diversity %.3f, spread %.3f\n", *batch, q.Diversity, q.Spread)
	if *order == "" {
		return nil
	}
	f, err := os.Create(*order)
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
