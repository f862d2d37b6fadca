package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// sharedTier gives the server a shared memory tier of n bytes
// (--memory-region locked shares it whether or not mlock is allowed).
func sharedTier(n int64) func(*Config) {
	return func(c *Config) {
		c.MemoryRegion = gpu.RegionLocked
		c.Cache.MemoryBytes = n
	}
}

// Fields whose shard is in the shared tier come as offsets into it, the
// others through the stream's region; a tier smaller than the dataset
// makes both happen. Every byte equals the gRPC read.
func TestShmTierEpochMatchesGRPC(t *testing.T) {
	syn := wds.Synthetic{Shards: 6, PerShard: 30, SampleSize: 70 << 10, Seed: 3} // 12.5 MiB
	h := newHarness(t, syn, func(c *Config) {
		sharedTier(8 << 20)(c)
		c.MaxPartBytes = 1 << 20
	})
	info := h.srv.Stats().GetHost().GetMemoryRegion()
	if info.GetSharedPath() == "" {
		t.Fatalf("the tier is not shared: %v", info)
	}
	if _, err := os.Stat(info.GetSharedPath()); err != nil {
		t.Fatal(err)
	}
	c, err := stoker.Dial(serveUnix(t, h), stoker.WithSharedMemory(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for epoch := range uint64(2) {
		e := stoker.Epoch{URL: h.url, Seed: 9, Epoch: epoch, BatchSize: 24, ShuffleWindow: 2}
		want, _ := readAll(t, h.client, e)
		got, _ := readAll(t, c, e)
		if len(got) != syn.Shards*syn.PerShard || len(got) != len(want) {
			t.Fatalf("epoch %d: shm read %d samples, gRPC %d", epoch, len(got), len(want))
		}
		for k, fs := range want {
			for name, b := range fs {
				if !bytes.Equal(got[k][name], b) {
					t.Fatalf("epoch %d: sample %s field %s: shm bytes differ from gRPC", epoch, k, name)
				}
			}
		}
	}
	st := h.srv.Stats()
	// Whether the tier also evicts depends on what the look-ahead let into
	// it (shards it would not keep are held outside it); eviction under
	// pinned leases has its own tests (the poisoned region's).
	if st.ShmTierBytes == 0 || st.ShmBytesServed == 0 {
		t.Fatalf("want fields both in place in the tier and copied: tier %d, copied %d, evictions %d",
			st.ShmTierBytes, st.ShmBytesServed, st.Evictions)
	}
	t.Logf("tier %d bytes, copied %d, evictions %d", st.ShmTierBytes, st.ShmBytesServed, st.Evictions)
	waitFor(t, "the leases to go", func() bool { s := h.srv.Stats(); return s.ShmLeases == 0 && s.ShmRegions == 0 })
}

// A client that holds its leases pins the tier's shards: the stream stops
// once the tier fields it holds reach the region's size, and goes on as
// they are released.
func TestShmTierSlowClientBacksUp(t *testing.T) {
	const region = 1 << 20
	syn := wds.Synthetic{Shards: 8, PerShard: 16, SampleSize: 32 << 10, Seed: 5} // 512 KiB shards
	h := newHarness(t, syn, func(c *Config) {
		sharedTier(16 << 20)(c)
		c.MaxPartBytes = 256 << 10
	})
	readAll(t, h.client, stoker.Epoch{URL: h.url, BatchSize: 8}) // the whole dataset in the tier
	before := h.srv.Stats().SamplesServed
	api := stokerv1.NewLoaderClient(dialRaw(t, serveUnix(t, h)))
	ctx := context.Background()
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 8, Shm: true, ShmTier: true, ShmRegionBytes: region})
	if err != nil {
		t.Fatal(err)
	}
	msgs, errc := receiveAll(st)
	waitFor(t, "the stream to wait for releases", func() bool { return h.srv.Stats().ShmWaits > 0 })
	// What was sent before the wait fills the region with tier fields, and
	// one more step would have overfilled it.
	tierBytes := func(m *stokerv1.StreamBatchesResponse) (n uint64) {
		for _, smp := range m.GetSamples() {
			for _, f := range smp.GetFields() {
				n += f.GetShmLength()
			}
		}
		return n
	}
	// The stream is blocked, so what it sent no longer grows; the client
	// may still be receiving it.
	sent := h.srv.Stats().SamplesServed - before
	var early []*stokerv1.StreamBatchesResponse
	held := uint64(0)
	for got := uint64(0); got < sent; {
		m, ok := <-msgs
		if !ok {
			t.Fatalf("the stream ended after %d of the %d samples sent before it waited: %v", got, sent, <-errc)
		}
		early = append(early, m)
		held += tierBytes(m)
		got += uint64(len(m.GetSamples()))
	}
	if len(early) < 2 || held > region || held+tierBytes(early[0]) <= region {
		t.Fatalf("%d messages holding %d bytes of the tier before the stream waited, in a region of %d", len(early), held, region)
	}
	var region0 string
	var tier *stokerv1.ShmRegion
	total := 0
	handle := func(m *stokerv1.StreamBatchesResponse) {
		if g := m.GetShmRegion(); g != nil {
			region0, tier = g.GetId(), m.GetShmTier()
		}
		for _, smp := range m.GetSamples() {
			for _, f := range smp.GetFields() {
				if len(f.GetData()) != 0 || (!f.GetShmTier() && f.GetShmLength() > 0) {
					t.Fatalf("field %s of %s: not in the tier", f.GetName(), smp.GetKey())
				}
			}
			total++
		}
		if _, err := api.ReleaseShm(ctx, &stokerv1.ReleaseShmRequest{Region: region0, Leases: []uint64{m.GetShmLease().GetId()}}); err != nil && status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
	}
	for _, m := range early {
		handle(m)
	}
	for m := range msgs {
		handle(m)
	}
	if err := <-errc; !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if total != syn.Shards*syn.PerShard || tier == nil || tier.GetPath() != h.srv.Stats().GetHost().GetMemoryRegion().GetSharedPath() {
		t.Fatalf("read %d samples, tier %v", total, tier)
	}
}

// Shutdown unmaps the shared tier and removes its file.
func TestShmTierFileGoesAtShutdown(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 10, Seed: 1}, sharedTier(1<<20))
	path := h.srv.Stats().GetHost().GetMemoryRegion().GetSharedPath()
	if path == "" {
		t.Fatal("not shared")
	}
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("tier file after Shutdown: %v", err)
	}
}

// A step whose parts alone overfill the region cannot be placed (the
// client releases a step once it has all its parts): the stream fails
// with a message that says what to do, instead of waiting for ever. The
// server sees it before sending the step; with a shared tier, which some
// fields may skip the region through, only once the region is full of the
// step, after its region file is gone: the client still reports the
// server's error, not its failure to map the region.
func TestShmStepLargerThanRegionFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"checked before sending", nil},
		{"found when the region fills", sharedTier(64 << 10)}, // shards bypass so small a tier
	} {
		t.Run(tc.name, func(t *testing.T) {
			syn := wds.Synthetic{Shards: 1, PerShard: 40, SampleSize: 64 << 10, Seed: 2}
			h := newHarness(t, syn, func(c *Config) {
				if tc.mutate != nil {
					tc.mutate(c)
				}
				c.MaxPartBytes = 256 << 10
			})
			c, err := stoker.Dial(serveUnix(t, h), stoker.WithSharedMemory(1<<20))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got error
			for _, err := range c.Batches(context.Background(), stoker.Epoch{URL: h.url, BatchSize: 32}) { // 2 MiB steps
				if err != nil {
					got = err
					break
				}
			}
			if status.Code(got) != codes.ResourceExhausted || !strings.Contains(got.Error(), "shm_region_bytes") {
				t.Fatalf("got %v, want ResourceExhausted naming shm_region_bytes", got)
			}
			waitFor(t, "the region to go", func() bool { return h.srv.Stats().ShmRegions == 0 })
		})
	}
}

// A tier file left by an earlier stokerd with the same pid (a restarted
// container) is replaced, not a reason to keep the tier private.
func TestShmTierReplacesStaleFile(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, fmt.Sprintf("stoker-%d-tier.shm", os.Getpid()))
	if err := os.WriteFile(stale, []byte("an earlier stokerd's tier"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 10, Seed: 1}, func(c *Config) {
		sharedTier(1 << 20)(c)
		c.Shm.Dir = dir
	})
	info := h.srv.Stats().GetHost().GetMemoryRegion()
	if info.GetSharedPath() != stale {
		t.Fatalf("tier %v, want shared at %s", info, stale)
	}
	if st, err := os.Stat(stale); err != nil || st.Size() < 1<<20 {
		t.Fatalf("tier file: %v, %v", st, err)
	}
}
