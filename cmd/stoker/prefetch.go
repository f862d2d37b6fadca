package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// prefetchOptions are the flags of `stoker prefetch`.
type prefetchOptions struct {
	dial                 *dialFlags
	epoch                uint64
	epochs               int
	seed                 uint64
	window               int
	indexOnly, noShuffle bool
	budget               string
	deadline             time.Duration
	wait                 bool
	interval             time.Duration
}

func newPrefetchCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	o := &prefetchOptions{}
	c := &cobra.Command{
		Use:   "prefetch URL",
		Short: "Send a prefetch hint for a dataset's epochs (--wait shows progress)",
		Long: `Tell the cluster which epochs of the dataset at URL a job will read, so
every owner fetches its shards ahead of the job. --wait shows a progress
bar (bytes, rate, time left) until every node is done, then each node's
part. Give the job's --seed and --shuffle-window so the right shards are
warmed first.`,
		Example: `  stoker prefetch s3://bucket/train/ --epoch 0 --epochs 2 --seed 7 --wait
  stoker prefetch 's3://bucket/train-{000000..000099}.tar' --budget 50GiB --wait`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			return runPrefetch(c.Context(), o, args[0], c.ErrOrStderr())
		},
	}
	fs := c.Flags()
	o.dial = addDialFlags(fs, defaultServer, lookupEnv)
	fs.Uint64Var(&o.epoch, "epoch", 0, "first epoch to warm")
	fs.IntVar(&o.epochs, "epochs", 1, "number of epochs to warm from --epoch on")
	fs.Uint64Var(&o.seed, "seed", 0, "the job's shuffle seed")
	fs.Var(windowValue{&o.window}, "shuffle-window", "the job's shuffle window: shards, 0 for the server's default (32), or all")
	fs.BoolVar(&o.indexOnly, "index-only", false, "only count and index the dataset's shards on this server (before a job, so its first batch waits for no counting); stoker index writes an index beside the shards instead, for every server")
	fs.BoolVar(&o.noShuffle, "no-shuffle", false, "the job reads in file order")
	fs.StringVar(&o.budget, "budget", "", "most bytes to fetch over the cluster (e.g. 50GiB; empty: no cap)")
	fs.DurationVar(&o.deadline, "deadline", 0, "give up after this long (0: never)")
	fs.BoolVar(&o.wait, "wait", false, "show progress until the cache is warm")
	fs.DurationVar(&o.interval, "interval", 500*time.Millisecond, "how often --wait polls")
	o.dial.completeFiles(c)
	_ = c.RegisterFlagCompletionFunc("shuffle-window", fixedCompletions("0", "all"))
	return c
}

// runPrefetch sends a prefetch hint and, with --wait, shows its progress
// until every node has finished.
func runPrefetch(ctx context.Context, o *prefetchOptions, url string, out io.Writer) error {
	req := &stokerv1.PrefetchRequest{Url: url, Seed: o.seed, ShuffleWindow: stoker.Epoch{ShuffleWindow: o.window}.Window(), NoShuffle: o.noShuffle, IndexOnly: o.indexOnly}
	for e := range o.epochs {
		req.Epochs = append(req.Epochs, o.epoch+uint64(e))
	}
	if o.budget != "" {
		b, err := humanize.ParseBytes(o.budget)
		if err != nil {
			return fmt.Errorf("--budget %q: %w", o.budget, err)
		}
		req.BudgetBytes = b
	}
	if o.deadline > 0 {
		req.DeadlineUnixMs = time.Now().Add(o.deadline).UnixMilli()
	}
	c, err := o.dial.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	lc := stokerv1.NewLoaderClient(c.Conn())
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // opening a new dataset indexes it
	resp, err := lc.Prefetch(rctx, req)
	cancel()
	if err != nil {
		return fmt.Errorf("prefetch on %s: %w", o.dial.addr, err)
	}
	fmt.Fprintf(out, "hint %s: %d shards, %s\n", resp.GetHintId(), resp.GetShardsTotal(), humanize.IBytes(resp.GetBytesTotal()))
	if !o.wait {
		return nil
	}
	bar := newPrefetchBar(out, resp.GetBytesTotal())
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := lc.PrefetchStatus(sctx, &stokerv1.PrefetchStatusRequest{HintId: resp.GetHintId()})
		cancel()
		if err != nil {
			_ = bar.Exit()
			fmt.Fprintln(out)
			return fmt.Errorf("prefetch status from %s: %w", o.dial.addr, err)
		}
		bar.update(st)
		if st.GetDone() {
			bar.finish()
			fmt.Fprintln(out)
			return finalReport(st, out)
		}
		select {
		case <-ctx.Done():
			_ = bar.Exit()
			fmt.Fprintln(out)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// barThrottle is the least time between two draws of the bar.
var barThrottle = 100 * time.Millisecond

// prefetchBar draws a hint's progress: bytes done of the total, the rate
// and the time left, and how many nodes are done.
type prefetchBar struct {
	*progressbar.ProgressBar
	total uint64
}

func newPrefetchBar(out io.Writer, total uint64) *prefetchBar {
	maxBytes := int64(-1) // unknown: a spinner with the bytes done
	if total > 0 && total <= math.MaxInt64 {
		maxBytes = int64(total)
	}
	return &prefetchBar{total: total, ProgressBar: progressbar.NewOptions64(maxBytes,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("prefetch"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(barThrottle),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

// update moves the bar to the status's bytes and names the nodes done.
func (b *prefetchBar) update(st *stokerv1.PrefetchStatusResponse) {
	done := 0
	for _, p := range st.GetNodes() {
		if p.GetState() != "running" {
			done++
		}
	}
	b.Describe(fmt.Sprintf("%d/%d nodes done", done, len(st.GetNodes())))
	if n := st.GetBytesDone(); n <= math.MaxInt64 {
		_ = b.Set64(int64(n))
	}
}

// finish draws the bar full (a hint done short of its total, every node
// having stopped, is shown where it stopped).
func (b *prefetchBar) finish() {
	if b.State().CurrentNum >= b.GetMax64() {
		_ = b.Finish()
		return
	}
	_ = b.Exit()
}

// finalReport prints each node's part and fails when a part did not finish.
func finalReport(st *stokerv1.PrefetchStatusResponse, out io.Writer) error {
	var bad []string
	for _, p := range st.GetNodes() {
		fmt.Fprintf(out, "  %-24s %-11s %d/%d shards  %s / %s  %s\n", p.GetNode(), p.GetState(), p.GetShardsDone(), p.GetShardsTotal(),
			humanize.IBytes(p.GetBytesDone()), humanize.IBytes(p.GetBytesTotal()), p.GetError())
		if p.GetState() != "done" {
			bad = append(bad, p.GetNode()+" "+p.GetState())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("prefetch incomplete: %s", strings.Join(bad, ", "))
	}
	return nil
}
