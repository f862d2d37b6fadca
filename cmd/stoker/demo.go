package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/server"
)

// demoOptions are the flags of `stoker demo`.
type demoOptions struct {
	shards, perShard, size, epochs int
	keep                           bool
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Write a small synthetic WebDataset, serve it in process, read two epochs",
		Long: `The quickstart: write a small synthetic WebDataset to a temporary folder,
serve it from a stokerd inside this process, and read it twice: the
first epoch from the files, the second from the cache. Needs no S3 and
no running server.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDemo(c.Context(), o, c.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.IntVar(&o.shards, "shards", 16, "shards to write")
	fs.IntVar(&o.perShard, "samples", 128, "samples per shard")
	fs.IntVar(&o.size, "sample-size", 64<<10, "bytes of the image field of each sample")
	fs.IntVar(&o.epochs, "epochs", 2, "epochs to read")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder")
	return c
}

// runDemo is the quickstart: it needs no S3 and no running server.
func runDemo(ctx context.Context, o *demoOptions, out io.Writer) error {
	dir, err := os.MkdirTemp("", "stoker-demo-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	data := filepath.Join(dir, "data")
	fmt.Fprintf(out, "writing %d shards x %d samples (%s each) to %s\n", o.shards, o.perShard, humanize.IBytes(uint64(o.size)), data)
	if err := (wds.Synthetic{Shards: o.shards, PerShard: o.perShard, SampleSize: o.size, Seed: 1}).Write(data); err != nil {
		return err
	}

	cfg := server.DefaultConfig()
	cfg.Cache.Dir = filepath.Join(dir, "cache")
	cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = 256<<20, 1<<30
	files, err := storage.AllowFiles(storage.NewFileSource(), []string{data}) // its own folder, and nothing else
	if err != nil {
		return err
	}
	sources := storage.NewSources(map[string]storage.Source{"file": files})
	srv, err := server.New(cfg, sources, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()
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
	fmt.Fprintln(tw, "epoch\tsamples\tdata\trate\tcache hit rate\tstall\t")
	for e := range o.epochs {
		s, err := readEpoch(ctx, c, stoker.Epoch{URL: url, Seed: 42, Epoch: uint64(e), BatchSize: 32, ShuffleWindow: 4}, io.Discard, func(*stoker.Batch) error { return nil })
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s/s\t%.1f%%\t%s\t\n", e, s.Samples, humanize.IBytes(uint64(s.Bytes)), humanize.IBytes(uint64(s.bytesPerSecond())), 100*s.hitRate(), s.Stall.Round(time.Microsecond))
	}
	return tw.Flush()
}
