package server

import (
	"bytes"
	"context"
	"os"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// TestGDSExtentsHoldTheBytes reads a cached epoch as disk extents: every
// field arrives as a range of a cache file, reading it gives the gRPC
// bytes, and the pins and leases are gone after the epoch.
func TestGDSExtentsHoldTheBytes(t *testing.T) {
	syn := wds.Synthetic{Shards: 3, PerShard: 20, SampleSize: 50 << 10, Seed: 12}
	h := newHarness(t, syn, func(c *Config) { c.Cache.DiskBytes = 1 << 30; c.MaxPartBytes = 256 << 10 })
	c, err := stoker.Dial(serveUnix(t, h), stoker.WithGPUDirect(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := stoker.Epoch{URL: h.url, Seed: 4, Epoch: 1, BatchSize: 9}
	want, _ := readAll(t, h.client, e) // also puts every shard in the disk tier
	total, extents := 0, 0
	for b, err := range c.Batches(context.Background(), e) {
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Samples {
			for _, f := range s.GetFields() {
				x := f.GetExtent()
				if x == nil {
					t.Fatalf("sample %s field %s: no extent though its shard is on disk", s.GetKey(), f.GetName())
				}
				if len(f.GetData()) != 0 {
					t.Fatal("a field has both data and an extent")
				}
				got := make([]byte, x.GetLength())
				file, err := os.Open(x.GetPath())
				if err != nil {
					t.Fatal(err)
				}
				_, err = file.ReadAt(got, int64(x.GetOffset()))
				file.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want[s.GetKey()][f.GetName()]) {
					t.Fatalf("sample %s field %s: extent bytes differ from gRPC", s.GetKey(), f.GetName())
				}
				total += len(got)
				extents++
			}
		}
	}
	if extents != syn.Shards*syn.PerShard*3 {
		t.Fatalf("%d extents, want 3 fields of %d samples", extents, syn.Shards*syn.PerShard)
	}
	st := h.srv.Stats()
	if st.ShmExtentBytes != uint64(total) || st.ShmLeases != 0 || st.ShmRegions != 0 {
		t.Fatalf("extent bytes %d (want %d), leases %d, regions %d", st.ShmExtentBytes, total, st.ShmLeases, st.ShmRegions)
	}
}

// TestGDSWithoutDiskFallsBackToShm asks for extents from a server with no
// disk tier: the bytes come through the region.
func TestGDSWithoutDiskFallsBackToShm(t *testing.T) {
	syn := wds.Synthetic{Shards: 2, PerShard: 10, SampleSize: 10 << 10, Seed: 13}
	h := newHarness(t, syn, nil)
	c, err := stoker.Dial(serveUnix(t, h), stoker.WithGPUDirect(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := stoker.Epoch{URL: h.url, Seed: 4, BatchSize: 6}
	want, _ := readAll(t, h.client, e)
	got, _ := readAll(t, c, e)
	for k, fs := range want {
		for name, b := range fs {
			if !bytes.Equal(got[k][name], b) {
				t.Fatalf("sample %s field %s differs", k, name)
			}
		}
	}
	if st := h.srv.Stats(); st.ShmExtentBytes != 0 || st.ShmBytesServed == 0 {
		t.Fatalf("extent bytes %d, shm bytes %d", st.ShmExtentBytes, st.ShmBytesServed)
	}
	api := stokerv1.NewLoaderClient(dialRaw(t, serveUnix(t, h)))
	st, err := api.StreamBatches(context.Background(), &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 2, Gds: true})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gds without shm: %v, want InvalidArgument", err)
	}
}
