package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// A dataset far larger than the cache is warned of once, and the ratio is
// a metric; one that fits is not warned of.
func TestCacheFarSmallerThanDataset(t *testing.T) {
	dir := t.TempDir()
	big, small := filepath.Join(dir, "big"), filepath.Join(dir, "small")
	if err := (wds.Synthetic{Shards: 4, PerShard: 16, SampleSize: 64 << 10, Seed: 1}).Write(big); err != nil { // ~4 MiB
		t.Fatal(err)
	}
	if err := (wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 1 << 10, Seed: 1}).Write(small); err != nil {
		t.Fatal(err)
	}
	srv, logs, addr := serveLogged(t, func(c *Config) { c.Cache.MemoryBytes = 256 << 10 }, nil)
	api := stokerv1.NewLoaderClient(dialRaw(t, addr))
	ctx := context.Background()
	for _, url := range []string{"file://" + small + "/", "file://" + big + "/", "file://" + big + "/"} {
		if _, err := api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: url}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "the cache is far smaller than this dataset"); n != 1 {
		t.Errorf("%d warnings, want 1 (for the big dataset, once):\n%s", n, logs.String())
	}
	var warning string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "the cache is far smaller than this dataset") {
			warning = line
		}
	}
	if !strings.Contains(warning, big) || strings.Contains(warning, "url=file://"+small) {
		t.Errorf("the warning does not name the big dataset alone:\n%s", logs.String())
	}
	mfs, err := srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "stoker_cache_dataset_ratio" {
			if r := mf.GetMetric()[0].GetGauge().GetValue(); r <= 0 || r >= 0.1 {
				t.Errorf("stoker_cache_dataset_ratio = %v, want the big dataset's (under 0.1)", r)
			}
			return
		}
	}
	t.Error("no stoker_cache_dataset_ratio metric")
}

// columns name Arrow columns; a WebDataset has fields, and a request that
// projects it is refused rather than served whole.
func TestColumnsOnWebDatasetRefused(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 4, SampleSize: 64, Seed: 1}, nil)
	err := streamErr(context.Background(), stokerv1.NewLoaderClient(dialRaw(t, h.addr)),
		&stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 2, Columns: []string{"jpg"}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "columns:") {
		t.Fatalf("columns on a WebDataset: %v, want InvalidArgument naming columns", err)
	}
}
