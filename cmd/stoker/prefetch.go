package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// runPrefetch sends a prefetch hint and, with --wait, shows its progress
// until every node has finished.
func runPrefetch(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("prefetch", flag.ContinueOnError)
	addr := fs.String("server", "127.0.0.1:7470", "server address (host:port or unix:///path)")
	epoch := fs.Uint64("epoch", 0, "first epoch to warm")
	epochs := fs.Int("epochs", 1, "number of epochs to warm from --epoch on")
	seed := fs.Uint64("seed", 0, "the job's shuffle seed")
	var window int
	fs.Func("shuffle-window", "the job's shuffle window: shards, 0 for the server's default (32), or all", func(v string) (err error) {
		window, err = parseWindow(v)
		return err
	})
	indexOnly := fs.Bool("index-only", false, "only count and index the dataset's shards on this server (before a job, so its first batch waits for no counting); `stoker index` writes an index beside the shards instead, for every server")
	noShuffle := fs.Bool("no-shuffle", false, "the job reads in file order")
	budget := fs.String("budget", "", "most bytes to fetch over the cluster (e.g. 50GiB; empty: no cap)")
	deadline := fs.Duration("deadline", 0, "give up after this long (0: never)")
	wait := fs.Bool("wait", false, "show progress until the cache is warm")
	interval := fs.Duration("interval", 500*time.Millisecond, "how often --wait polls")
	tf := addDialFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("prefetch: want exactly one dataset URL")
	}
	req := &stokerv1.PrefetchRequest{Url: pos[0], Seed: *seed, ShuffleWindow: stoker.Epoch{ShuffleWindow: window}.Window(), NoShuffle: *noShuffle, IndexOnly: *indexOnly}
	for e := range *epochs {
		req.Epochs = append(req.Epochs, *epoch+uint64(e))
	}
	if *budget != "" {
		b, err := humanize.ParseBytes(*budget)
		if err != nil {
			return fmt.Errorf("--budget %q: %w", *budget, err)
		}
		req.BudgetBytes = b
	}
	if *deadline > 0 {
		req.DeadlineUnixMs = time.Now().Add(*deadline).UnixMilli()
	}
	c, err := tf.dial(*addr)
	if err != nil {
		return err
	}
	defer c.Close()
	lc := stokerv1.NewLoaderClient(c.Conn())
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // opening a new dataset indexes it
	resp, err := lc.Prefetch(rctx, req)
	cancel()
	if err != nil {
		return fmt.Errorf("prefetch on %s: %w", *addr, err)
	}
	fmt.Fprintf(out, "hint %s: %d shards, %s\n", resp.GetHintId(), resp.GetShardsTotal(), humanize.IBytes(resp.GetBytesTotal()))
	if !*wait {
		return nil
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := lc.PrefetchStatus(sctx, &stokerv1.PrefetchStatusRequest{HintId: resp.GetHintId()})
		cancel()
		if err != nil {
			return fmt.Errorf("prefetch status from %s: %w", *addr, err)
		}
		fmt.Fprintf(out, "\r%s", progressLine(st))
		if st.GetDone() {
			fmt.Fprintln(out)
			return finalReport(st, out)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// progressLine is "[#####.....]  52%  1.3 GiB / 2.5 GiB  2/3 nodes done".
func progressLine(st *stokerv1.PrefetchStatusResponse) string {
	const width = 30
	frac := 1.0
	if st.GetBytesTotal() > 0 {
		frac = float64(st.GetBytesDone()) / float64(st.GetBytesTotal())
	}
	n := int(frac * width)
	done := 0
	for _, p := range st.GetNodes() {
		if p.GetState() != "running" {
			done++
		}
	}
	return fmt.Sprintf("[%s%s] %3.0f%%  %s / %s  %d/%d nodes done", strings.Repeat("#", n), strings.Repeat(".", width-n),
		100*frac, humanize.IBytes(st.GetBytesDone()), humanize.IBytes(st.GetBytesTotal()), done, len(st.GetNodes()))
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
