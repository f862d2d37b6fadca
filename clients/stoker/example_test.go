package stoker_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/server"
)

// startServer serves a synthetic dataset of 4 shards × 25 samples from a
// temporary folder and returns the server's address and the dataset URL.
func startServer() (addr, url string, stop func()) {
	dir, err := os.MkdirTemp("", "stoker-example-")
	if err != nil {
		log.Fatal(err)
	}
	if err := (wds.Synthetic{Shards: 4, PerShard: 25, SampleSize: 1024, Seed: 1}).Write(filepath.Join(dir, "data")); err != nil {
		log.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(dir, "cache"), 64<<20, 0
	srv, err := server.New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), nil)
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), "file://" + filepath.Join(dir, "data") + "/", func() {
		_ = srv.Shutdown(context.Background())
		os.RemoveAll(dir)
	}
}

// Read rank 1's share of an epoch, then resume the same rank from a cursor.
func ExampleClient_Batches() {
	addr, url, stop := startServer()
	defer stop()
	c, err := stoker.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	e := stoker.Epoch{URL: url, Seed: 42, Epoch: 0, Rank: 1, WorldSize: 2, BatchSize: 16}
	samples, batches := 0, 0
	var cursor uint64
	for b, err := range c.Batches(ctx, e) {
		if err != nil {
			log.Fatal(err)
		}
		samples += len(b.Samples)
		if batches++; batches == 2 {
			cursor = b.Cursor // a checkpoint after two steps
		}
	}
	fmt.Println("rank 1 read", samples, "samples in", batches, "batches")

	e.Start = cursor
	rest := 0
	for b, err := range c.Batches(ctx, e) {
		if err != nil {
			log.Fatal(err)
		}
		rest += len(b.Samples)
	}
	fmt.Println("resumed at position", cursor, "and read", rest, "more")
	// Output:
	// rank 1 read 48 samples in 4 batches
	// resumed at position 64 and read 16 more
}
