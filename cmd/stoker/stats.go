package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func newStatsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	var dial *dialFlags
	c := &cobra.Command{
		Use:   "stats",
		Short: "Print a server's statistics",
		Long: `Print a server's statistics: what each cache tier holds, the distinct
data cached (a shard in both tiers counts once), hits, storage reads,
what was served, stall time and open streams.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runStats(c.Context(), dial, c.OutOrStdout())
		},
	}
	dial = addDialFlags(c.Flags(), defaultServer, lookupEnv)
	dial.completeFiles(c)
	return c
}

func runStats(ctx context.Context, dial *dialFlags, out io.Writer) error {
	c, err := dial.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.Stats(ctx)
	if err != nil {
		return fmt.Errorf("stats from %s: %w", dial.addr, err)
	}
	rate, _ := cacheHitRate(st)
	fmt.Fprintf(out, "memory tier     %s\n", tierFill(st.GetMemoryBytes(), st.GetMemoryCapacity()))
	fmt.Fprintf(out, "disk tier       %s\n", tierFill(st.GetDiskBytes(), st.GetDiskCapacity()))
	fmt.Fprintf(out, "cached data     %s\n", distinct(st))
	fmt.Fprintf(out, "cache hits      memory %d, disk %d, misses %d (hit rate %.1f%%)\n", st.GetMemoryHits(), st.GetDiskHits(), st.GetMisses(), 100*rate)
	fmt.Fprintf(out, "evictions       %d\n", st.GetEvictions())
	fmt.Fprintf(out, "storage         %d requests, %s (sample ranges: %d requests, %s)\n", st.GetStorageRequests(), humanize.IBytes(st.GetStorageBytes()),
		st.GetStorageRangeRequests(), humanize.IBytes(st.GetStorageRangeBytes()))
	fmt.Fprintf(out, "disk samples    %d read from the disk tier without their shard\n", st.GetDiskRangeHits())
	for _, p := range st.GetCounting() {
		fmt.Fprintf(out, "counting        %s: %d of %d shards\n", p.GetUrl(), p.GetShardsCounted(), p.GetShardsTotal())
	}
	fmt.Fprintf(out, "served          %d samples, %s\n", st.GetSamplesServed(), humanize.IBytes(st.GetBytesServed()))
	fmt.Fprintf(out, "stall           %s\n", time.Duration(st.GetStallNanos()).Round(time.Millisecond))
	fmt.Fprintf(out, "active streams  %d\n", st.GetActiveStreams())
	if p := st.GetPipeline(); p.GetSamples() > 0 || p.GetErrors() > 0 {
		per := time.Duration(0)
		if p.GetSamples() > 0 {
			per = time.Duration(p.GetBusyNanos() / p.GetSamples())
		}
		fmt.Fprintf(out, "pipeline        %d samples (%s each on %d workers, %s), %d failed, %d scaled in the DCT domain, %s of tensors\n",
			p.GetSamples(), per.Round(time.Microsecond), p.GetWorkers(), p.GetJpegDecoder(), p.GetErrors(), p.GetDctScaled(), humanize.IBytes(p.GetBytesOut()))
	}
	return nil
}

// tierFill is "65 MiB / 1.0 GiB", or "off" for a tier of no capacity.
func tierFill(used, capacity uint64) string {
	if capacity == 0 {
		return "off"
	}
	return humanize.IBytes(used) + " / " + humanize.IBytes(capacity)
}

// distinct is the data a server caches, each shard once, or "unknown"
// from a server too old to say.
func distinct(st *stokerv1.StatsResponse) string {
	if st.CachedBytes == nil {
		return "unknown (the server does not report it)"
	}
	return humanize.IBytes(st.GetCachedBytes()) + " (a shard in both tiers counts once)"
}

// cacheHitRate is the share of a server's cache lookups that hit either
// tier; false before its first lookup.
func cacheHitRate(st *stokerv1.StatsResponse) (float64, bool) {
	hits := st.GetMemoryHits() + st.GetDiskHits()
	if gets := hits + st.GetMisses(); gets > 0 {
		return float64(hits) / float64(gets), true
	}
	return 0, false
}
