package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/server"
)

// A server that stops once the epoch has been read whole (the job is done)
// costs `stoker read` its cache figures, not its exit status: the Stats
// call after the epoch used to fail the read.
func TestReadSurvivesServerStopAfterEpoch(t *testing.T) {
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 3, PerShard: 10, SampleSize: 512, Seed: 1}).Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(dir, "cache"), 16<<20, 0
	srv, err := server.New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()
	c, err := stoker.Dial(lis.Addr().String(), stoker.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	e := stoker.Epoch{URL: "file://" + filepath.Join(dir, "data") + "/", BatchSize: 4}
	seen := 0
	sum, err := readEpoch(context.Background(), c, e, io.Discard, func(b *stoker.Batch) error {
		seen += b.Rows()
		if seen == 30 { // the last batch: the server stops as the stream ends
			if err := srv.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a whole epoch read, then the server stopped: %v", err)
	}
	if sum.Samples != 30 || sum.StatsErr == nil {
		t.Fatalf("summary %+v: want 30 samples and the Stats error kept", sum)
	}
}
