package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func runStats(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	addr := fs.String("server", "127.0.0.1:7470", "server address (host:port or unix:///path)")
	tf := addDialFlags(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := tf.dial(*addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.Stats(ctx)
	if err != nil {
		return fmt.Errorf("stats from %s: %w", *addr, err)
	}
	rate, _ := cacheHitRate(st)
	fmt.Fprintf(out, "memory tier     %s / %s\n", humanize.IBytes(st.GetMemoryBytes()), humanize.IBytes(st.GetMemoryCapacity()))
	fmt.Fprintf(out, "disk tier       %s / %s\n", humanize.IBytes(st.GetDiskBytes()), humanize.IBytes(st.GetDiskCapacity()))
	fmt.Fprintf(out, "cache hits      memory %d, disk %d, misses %d (hit rate %.1f%%)\n", st.GetMemoryHits(), st.GetDiskHits(), st.GetMisses(), 100*rate)
	fmt.Fprintf(out, "evictions       %d\n", st.GetEvictions())
	fmt.Fprintf(out, "storage         %d requests, %s\n", st.GetStorageRequests(), humanize.IBytes(st.GetStorageBytes()))
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

// cacheHitRate is the share of a server's cache lookups that hit either
// tier; false before its first lookup.
func cacheHitRate(st *stokerv1.StatsResponse) (float64, bool) {
	hits := st.GetMemoryHits() + st.GetDiskHits()
	if gets := hits + st.GetMisses(); gets > 0 {
		return float64(hits) / float64(gets), true
	}
	return 0, false
}
