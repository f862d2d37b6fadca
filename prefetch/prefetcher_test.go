package prefetch

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// prefetchEnv is a synthetic dataset in a folder, opened through the real
// file source, catalog, shards and cache.
type prefetchEnv struct {
	src     *storage.FileSource
	cache   *cache.Cache
	shards  *Shards
	catalog *dataset.Catalog
	ds      *dataset.Dataset
}

func newPrefetchEnv(t *testing.T, syn wds.Synthetic, memory int64) *prefetchEnv {
	t.Helper()
	dir := t.TempDir()
	if err := syn.Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	tiers, err := cache.Open(cache.Config{MemoryBytes: memory, Dir: filepath.Join(dir, "cache"), Policy: cache.PolicyPlan}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiers.Close() })
	src := storage.NewFileSource()
	sources := storage.NewSources(map[string]storage.Source{"file": src})
	shards := NewShards(ShardsConfig{MaxFetches: 2}, sources, tiers, log)
	cat, err := dataset.NewCatalog(dataset.CatalogConfig{Dir: filepath.Join(dir, "catalog")}, sources, shards, log)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cat.Open(context.Background(), "file://"+filepath.Join(dir, "data")+"/", "")
	if err != nil {
		t.Fatal(err)
	}
	return &prefetchEnv{src: src, cache: tiers, shards: shards, catalog: cat, ds: ds}
}

// counts counts every shard of the dataset (through the env's own cache)
// and returns the counts.
func (e *prefetchEnv) counts(t *testing.T) []int {
	t.Helper()
	all := make([]int, len(e.ds.Manifest.Shards))
	for i := range all {
		all[i] = i
	}
	if err := e.ds.CountShards(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	for i := range all {
		all[i], _ = e.ds.Count(i)
	}
	return all
}

// fresh returns an empty cache and a Shards over the same files.
func (e *prefetchEnv) fresh(t *testing.T, memory int64) (*cache.Cache, *Shards) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	tiers, err := cache.Open(cache.Config{MemoryBytes: memory, Dir: t.TempDir(), Policy: cache.PolicyPlan}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiers.Close() })
	return tiers, NewShards(ShardsConfig{MaxFetches: 2}, storage.NewSources(map[string]storage.Source{"file": e.src}), tiers, log)
}

// However many readers want a shard at once, it is fetched once: they
// share the fetch in flight or find it cached.
func TestOneFetchPerShard(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 4, PerShard: 4, SampleSize: 1000, Seed: 1}, 1<<20)
	_, shards := e.fresh(t, 1<<20)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			r, err := shards.Get(context.Background(), e.ds.Object(2))
			if err != nil || len(r.Bytes()) == 0 {
				t.Error(r, err)
				return
			}
			r.Release()
		})
	}
	wg.Wait()
	if n := shards.Fetches(); n != 1 {
		t.Fatalf("%d fetches of one shard for 16 readers", n)
	}
}

// The prefetcher fetches the coming batches' shards before they are asked
// for, and tells the cache which shard is needed next.
func TestPrefetcherReadsAheadAndOrdersEviction(t *testing.T) {
	syn := wds.Synthetic{Shards: 6, PerShard: 5, SampleSize: 2000, Seed: 1}
	e := newPrefetchEnv(t, syn, 1<<20)
	tiers, shards := e.fresh(t, 1<<20) // empty: nothing cached by indexing
	p := NewPrefetcher(PrefetchConfig{AheadBatches: 2, AheadBytes: 1 << 30}, shards, tiers)
	plan, err := shuffle.NewPlan(e.counts(t), shuffle.Settings{Seed: 3, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := shuffle.Batching{WorldSize: 1, BatchSize: 5}
	s := p.Open(e.ds, plan, b, 0)
	defer s.Close()

	s.Advance(0)
	shards.Wait()
	// Window 1: batch k is shard order[k]; batches 0 and 1 are fetched.
	for k := range 2 {
		sh := int(plan.At(k * 5).Shard)
		if tiers.Contains(e.ds.Key(sh)) == cache.TierNone {
			t.Fatalf("shard of batch %d not prefetched", k)
		}
	}
	if sh := int(plan.At(10).Shard); tiers.Contains(e.ds.Key(sh)) != cache.TierNone {
		t.Fatal("batch 2's shard fetched beyond the 2-batch window")
	}
	r, err := s.Shard(context.Background(), int(plan.At(0).Shard))
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if s.Stall != 0 {
		t.Fatalf("stalled %v on a prefetched shard", s.Stall)
	}
	// The oracle: batch 1's shard is needed 5 samples from now, a shard of
	// batch 4 at 20, batch 0's shard (being read) now.
	for k, want := range map[int]int64{0: 0, 1: 5, 4: 20} {
		if got := p.NextUse(e.ds.Key(int(plan.At(k * 5).Shard))); got != want {
			t.Errorf("NextUse(shard of batch %d) = %d, want %d", k, got, want)
		}
	}
	s.Advance(1)
	// The dataset fits the cache: every shard is kept, so a finished shard
	// ranks after every shard a stream needs, by its keep rank.
	done := e.ds.Key(int(plan.At(0).Shard))
	if got, want := p.NextUse(done), farBase+int64(rank(done)*farScale); got != want {
		t.Errorf("NextUse of a finished, kept shard = %d, want %d", got, want)
	}
}

// Whole shards are fetched ahead within half the memory tier (they ask
// the oracle before they evict anything): with shards of an eighth of it,
// four of the coming batches' shards, not the quarter's two.
func TestPrefetcherWholeShardsWithinHalfTheMemoryTier(t *testing.T) {
	syn := wds.Synthetic{Shards: 8, PerShard: 5, SampleSize: 2000, Seed: 1}
	e := newPrefetchEnv(t, syn, 1<<20)
	size := e.ds.Object(0).Bytes()
	for i := range syn.Shards {
		if e.ds.Object(i).Bytes() != size {
			t.Fatalf("shard %d has %d bytes, shard 0 %d: the test wants shards of one size", i, e.ds.Object(i).Bytes(), size)
		}
	}
	tiers, shards := e.fresh(t, 8*size)
	p := NewPrefetcher(PrefetchConfig{AheadBatches: 8, AheadBytes: 1 << 30}, shards, tiers)
	plan, err := shuffle.NewPlan(e.counts(t), shuffle.Settings{Seed: 3, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Open(e.ds, plan, shuffle.Batching{WorldSize: 1, BatchSize: 5}, 0)
	defer s.Close()
	s.Advance(0)
	shards.Wait()
	var fetched []int
	for k := range syn.Shards {
		if tiers.Contains(e.ds.Key(int(plan.At(k*5).Shard))) != cache.TierNone {
			fetched = append(fetched, k)
		}
	}
	if len(fetched) != 4 || fetched[0] != 0 || fetched[3] != 3 {
		t.Fatalf("the shards of batches %v were fetched ahead, want those of batches 0-3 (half the memory tier)", fetched)
	}
}

// A Shards.Get counts once in the cache's metrics: a miss, however many
// flights its fetch goes through (the remote one, then the local one, each
// looking at the cache again); the next Get is a hit.
func TestShardsGetCountsOnce(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 2, PerShard: 2, SampleSize: 100, Seed: 1}, 1<<20)
	tiers, shards := e.fresh(t, 1<<20)
	shards.SetRemote(&peerRemote{owner: func(storage.Object) *Shards { return nil }}) // this node owns everything: ErrLocal
	for range 2 {
		r, err := shards.Get(context.Background(), e.ds.Object(0))
		if err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	if m := tiers.Metrics(); m.Misses != 1 || m.Memory.Hits != 1 || m.Disk.Hits != 0 {
		t.Fatalf("two Gets of one shard: %d misses, %d memory hits, %d disk hits; want 1, 1, 0", m.Misses, m.Memory.Hits, m.Disk.Hits)
	}
}
