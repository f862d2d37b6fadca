package server

import (
	"bytes"
	"context"
	"os"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// TestGDSExtentsHoldTheBytes reads a cached epoch as disk extents: every
// field arrives as a range of a cache file, reading it gives the gRPC
// bytes, and the pins and leases are gone after the epoch.
func TestGDSExtentsHoldTheBytes(t *testing.T) {
	syn := wds.Synthetic{Shards: 3, PerShard: 20, SampleSize: 50 << 10, Seed: 12}
	h, c := extentServer(t, syn, 1<<30, 1<<30)
	e := stoker.Epoch{URL: h.url, Seed: 4, Epoch: 1, BatchSize: 9}
	want, _ := readAll(t, h.client, e) // also puts every shard in the disk tier
	total, extents := readExtentEpoch(t, c, e, want)
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

// TestExtentsOfShardsOnDiskAreNotRead streams an epoch as extents while
// the shards are in the disk tier only (the memory tier holds about one):
// every field is a range of its cache file with the right bytes, and the
// server reads none of them (the disk tier's read bytes do not move).
func TestExtentsOfShardsOnDiskAreNotRead(t *testing.T) {
	syn := wds.Synthetic{Shards: 6, PerShard: 20, SampleSize: 50 << 10, Seed: 14}
	h, c := extentServer(t, syn, 1200<<10, 1<<30)
	e := stoker.Epoch{URL: h.url, Seed: 4, Epoch: 1, BatchSize: 9}
	want, _ := readAll(t, h.client, e) // every shard to the disk tier, about one left in memory
	ds, err := h.srv.open(context.Background(), h.url, "")
	if err != nil {
		t.Fatal(err)
	}
	inMemory := 0
	for i := range syn.Shards {
		if h.srv.cache.Contains(ds.Key(i)) == cache.TierMemory {
			inMemory++
		}
	}
	if inMemory > 1 {
		t.Fatalf("%d shards in memory; the test wants them on disk", inMemory)
	}
	before := h.srv.cache.Metrics().Disk
	total, extents := readExtentEpoch(t, c, e, want)
	after := h.srv.cache.Metrics().Disk
	if read := after.ReadBytes - before.ReadBytes; read != 0 {
		t.Errorf("the server read %d bytes of the disk tier for a stream of extents", read)
	}
	// Every sample of a shard on disk only is a disk hit, read or not.
	if hits, onDisk := after.Hits-before.Hits, int64(syn.PerShard*(syn.Shards-inMemory)); hits < onDisk || extents == 0 {
		t.Errorf("%d disk hits for an epoch with %d samples of shards on disk only", hits, onDisk)
	}
	st := h.srv.Stats()
	if st.ShmExtentBytes != uint64(total) || st.ShmLeases != 0 || st.ShmRegions != 0 {
		t.Fatalf("extent bytes %d (want %d), leases %d, regions %d", st.ShmExtentBytes, total, st.ShmLeases, st.ShmRegions)
	}
}

// TestUnreadExtentsOnTheCopyPath: a sample taken unread as extents (its
// shard on disk only) gets its bytes read from its pinned file when its
// message must carry them (the copy path, when the views a client holds
// leave no room in the region), and its pin is handed over once.
func TestUnreadExtentsOnTheCopyPath(t *testing.T) {
	syn := wds.Synthetic{Shards: 6, PerShard: 20, SampleSize: 50 << 10, Seed: 15}
	h := newHarness(t, syn, func(c *Config) {
		c.Cache.DiskBytes, c.Cache.MemoryBytes = 1<<30, 1200<<10
	})
	e := stoker.Epoch{URL: h.url, Seed: 4, Epoch: 1, BatchSize: 9}
	want, _ := readAll(t, h.client, e) // every shard to the disk tier, about one left in memory
	ctx := context.Background()
	ds, err := h.srv.open(ctx, h.url, "")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := h.srv.plans.get(ds, shuffle.Settings{Seed: 4, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	ps := h.srv.prefetcher.Open(ds, plan, shuffle.Batching{WorldSize: 1, BatchSize: 9}, 0)
	defer ps.Close()
	if err := ps.Ensure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	x := &extentSource{cache: h.srv.cache, ds: ds}
	var samples []*prefetch.SampleData
	for pos := 0; pos < 9; pos++ {
		d, err := x.sample(ctx, ps, plan, pos)
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			if d.Size() != 0 {
				t.Fatalf("sample %s taken unread has %d bytes", d.Key, d.Size())
			}
			samples = append(samples, d)
		}
	}
	if len(samples) == 0 {
		t.Fatal("no sample of the first step was on disk only")
	}
	taken, n := x.take(samples)
	if len(taken) != len(samples) || len(x.unread) != 0 {
		t.Fatalf("took %d of %d samples, %d left", len(taken), len(samples), len(x.unread))
	}
	if err := x.read(taken); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, d := range samples {
		got += d.Size()
		for _, f := range d.Fields {
			if !bytes.Equal(f.Data, want[d.Key][f.Name]) {
				t.Fatalf("sample %s field %s: read from the disk tier, not its bytes", d.Key, f.Name)
			}
		}
	}
	if got != n {
		t.Fatalf("take counted %d bytes, the samples hold %d", n, got)
	}
	for _, fl := range taken {
		fl.unpin()
	}
}

// readExtentEpoch reads epoch e through c, which asks for extents: every
// field must be an extent alone, holding want's bytes (read from its
// file). It returns the bytes and the number of extents read.
func readExtentEpoch(t *testing.T, c *stoker.Client, e stoker.Epoch, want map[string]map[string][]byte) (total, extents int) {
	t.Helper()
	for b, err := range c.Batches(context.Background(), e) {
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Samples {
			for _, f := range s.GetFields() {
				x := f.GetExtent()
				if x == nil || len(f.GetData()) != 0 {
					t.Fatalf("sample %s field %s: not an extent alone, though its shard is on disk", s.GetKey(), f.GetName())
				}
				got := readExtent(t, x)
				if !bytes.Equal(got, want[s.GetKey()][f.GetName()]) {
					t.Fatalf("sample %s field %s: extent bytes differ from gRPC", s.GetKey(), f.GetName())
				}
				total += len(got)
				extents++
			}
		}
	}
	return total, extents
}

// TestExtentsLargerThanTheCache streams two epochs as extents of a
// dataset four times the whole cache (the memory tier holds about one of
// its eight shards, the disk tier two): every sample arrives once with
// its bytes, as an extent of a disk-tier file or through the region; the
// bytes read from storage and from the disk tier are counted per epoch;
// and no lease or region is left after either.
func TestExtentsLargerThanTheCache(t *testing.T) {
	syn := wds.Synthetic{Shards: 8, PerShard: 20, SampleSize: 50 << 10, Seed: 16}
	h, c := extentServer(t, syn, 1200<<10, 2400<<10)
	// The bytes to expect, from a plain stream of another epoch (one more
	// pass through the cache, before the counted ones).
	want, _ := readAll(t, h.client, stoker.Epoch{URL: h.url, Seed: 4, Epoch: 9, BatchSize: 9})
	data := 0
	for _, fs := range want {
		for _, b := range fs {
			data += len(b)
		}
	}
	for epoch := range 2 {
		e := stoker.Epoch{URL: h.url, Seed: 4, Epoch: uint64(epoch), BatchSize: 9}
		before, disk := h.srv.Stats(), h.srv.cache.Metrics().Disk
		seen, extents := map[string]bool{}, 0
		for b, err := range c.Batches(context.Background(), e) {
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range b.Samples {
				if seen[s.GetKey()] {
					t.Fatalf("epoch %d: sample %s twice", epoch, s.GetKey())
				}
				seen[s.GetKey()] = true
				for _, f := range s.GetFields() {
					got := f.GetData()
					if x := f.GetExtent(); x != nil {
						extents++
						got = readExtent(t, x)
					}
					if !bytes.Equal(got, want[s.GetKey()][f.GetName()]) {
						t.Fatalf("epoch %d: sample %s field %s: not its bytes", epoch, s.GetKey(), f.GetName())
					}
				}
			}
		}
		after := h.srv.Stats()
		stored := after.StorageBytes - before.StorageBytes
		fromDisk := h.srv.cache.Metrics().Disk.ReadBytes - disk.ReadBytes
		t.Logf("epoch %d: %d samples, %d fields as extents; storage sent %d bytes (%.2fx the samples' %d), the disk tier read %d",
			epoch, len(seen), extents, stored, float64(stored)/float64(data), data, fromDisk)
		if len(seen) != syn.Shards*syn.PerShard {
			t.Fatalf("epoch %d: %d samples, want %d", epoch, len(seen), syn.Shards*syn.PerShard)
		}
		// Each shard is read from storage about once an epoch (tar headers
		// and padding on top of the fields' bytes), whatever the cache.
		if float64(stored) > 1.5*float64(data) {
			t.Errorf("epoch %d: storage sent %.2fx the samples' bytes", epoch, float64(stored)/float64(data))
		}
		if extents == 0 {
			t.Errorf("epoch %d: no field came as an extent, though the disk tier holds two shards", epoch)
		}
		if after.ShmLeases != 0 || after.ShmRegions != 0 {
			t.Fatalf("epoch %d: %d leases, %d regions left", epoch, after.ShmLeases, after.ShmRegions)
		}
	}
}

// readExtent reads an extent's bytes from its file.
func readExtent(t *testing.T, x *stokerv1.FileExtent) []byte {
	t.Helper()
	got := make([]byte, x.GetLength())
	file, err := os.Open(x.GetPath())
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.ReadAt(got, int64(x.GetOffset())); err != nil {
		t.Fatal(err)
	}
	return got
}

// extentServer serves syn with a memory tier of memory bytes and a disk
// tier of disk, and returns it with a client on its unix socket that asks
// for extents (closed when the test ends).
func extentServer(t *testing.T, syn wds.Synthetic, memory, disk int64) (*harness, *stoker.Client) {
	t.Helper()
	h := newHarness(t, syn, func(c *Config) {
		c.Cache.MemoryBytes, c.Cache.DiskBytes, c.MaxPartBytes = memory, disk, 256<<10
	})
	c, err := stoker.Dial(serveUnix(t, h), stoker.WithGPUDirect(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return h, c
}
