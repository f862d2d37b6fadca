package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// harness is an in-process server over a dataset in a folder, served on a
// loopback TCP port.
type harness struct {
	srv    *Server
	addr   string
	url    string
	client *stoker.Client
}

// newHarness serves a synthetic WebDataset with a 1 GiB memory tier.
func newHarness(tb testing.TB, syn wds.Synthetic, mutate func(*Config)) *harness {
	tb.Helper()
	dir := tb.TempDir()
	if err := syn.Write(filepath.Join(dir, "data")); err != nil {
		tb.Fatal(err)
	}
	return serveDir(tb, dir, 1<<30, mutate)
}

// serveDir serves the files under dir/data with a memory tier of
// memoryBytes (no disk tier) cached under dir/cache, and stops the server
// at the end of the test.
func serveDir(tb testing.TB, dir string, memoryBytes int64, mutate func(*Config)) *harness {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Cache.Dir = filepath.Join(dir, "cache")
	cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = memoryBytes, 0
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), nil)
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	c, err := stoker.Dial(lis.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		if err := srv.Shutdown(context.Background()); err != nil {
			tb.Error(err)
		}
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return &harness{srv: srv, addr: lis.Addr().String(), url: "file://" + filepath.Join(dir, "data") + "/", client: c}
}
