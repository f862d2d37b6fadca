package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/server"
)

// runDemo is the quickstart: it needs no S3 and no running server.
func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	shards := fs.Int("shards", 16, "shards to write")
	perShard := fs.Int("samples", 128, "samples per shard")
	size := fs.Int("sample-size", 64<<10, "bytes of the image field of each sample")
	epochs := fs.Int("epochs", 2, "epochs to read")
	keep := fs.Bool("keep", false, "keep the temporary folder")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "stoker-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	data := filepath.Join(dir, "data")
	fmt.Fprintf(out, "writing %d shards x %d samples (%d KiB each) to %s\n", *shards, *perShard, *size>>10, data)
	if err := (wds.Synthetic{Shards: *shards, PerShard: *perShard, SampleSize: *size, Seed: 1}).Write(data); err != nil {
		return err
	}

	cfg := server.DefaultConfig()
	cfg.Cache.Dir = filepath.Join(dir, "cache")
	cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = 256<<20, 1<<30
	files, err := prefetch.AllowFiles(prefetch.NewFileSource(), []string{data}) // its own folder, and nothing else
	if err != nil {
		return err
	}
	sources := prefetch.NewSources(map[string]prefetch.Source{"file": files})
	srv, err := server.New(cfg, sources, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Shutdown(context.Background())
	fmt.Fprintf(out, "serving in process on %s\n\n", lis.Addr())

	c, err := stoker.Dial(lis.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	url := "file://" + data + "/"
	t := time.Now()
	ds, err := c.OpenDataset(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "opened %s: %d shards, %d samples, indexed in %s (indexing read each shard once and cached it)\n\n", url, len(ds.GetShards()), ds.GetNumSamples(), time.Since(t).Round(time.Millisecond))

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "epoch\tsamples\tMB\tMB/s\tcache hit rate\tstall\t")
	for e := range *epochs {
		s, err := readEpoch(ctx, c, stoker.Epoch{URL: url, Seed: 42, Epoch: uint64(e), BatchSize: 32, ShuffleWindow: 4}, io.Discard, func(*stoker.Batch) error { return nil })
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.0f\t%.1f%%\t%s\t\n", e, s.Samples, float64(s.Bytes)/1e6, s.mbps(), 100*s.hitRate(), s.Stall.Round(time.Microsecond))
	}
	return tw.Flush()
}
