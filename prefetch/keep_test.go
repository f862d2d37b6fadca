package prefetch

import (
	"math"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// rank is a fraction in [0, 1), the same for the same key, and spread:
// a thousand keys fill ten buckets evenly enough.
func TestRankIsStableAndSpread(t *testing.T) {
	var buckets [10]int
	for i := range 1000 {
		k := storage.Key{Object: "s3://b/train/" + string(rune('a'+i%26)) + "-" + time.Duration(i).String() + ".tar", ETag: "e"}
		r := rank(k)
		if r < 0 || r >= 1 || r != rank(k) {
			t.Fatalf("rank %v of %v", r, k)
		}
		buckets[int(r*10)]++
	}
	for i, n := range buckets {
		if n < 60 || n > 140 {
			t.Fatalf("bucket %d holds %d of 1000 ranks: %v", i, n, buckets)
		}
	}
}

// A dataset larger than the keep capacity keeps the shards of lowest rank
// that fill Fill of it, exactly: the kept bytes are within one shard of
// the share, whatever the hash does with few shards.
func TestKeptSubsetFillsItsShare(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 40, PerShard: 2, SampleSize: 1000, Seed: 1}, 1<<20)
	size := e.ds.Object(0).Bytes()
	k := newKeeper(KeepConfig{Fill: 0.9, ActiveFor: time.Hour}, func() int64 { return e.ds.Bytes / 4 })
	k.use(e.ds, time.Now())
	var kept int64
	for i := range e.ds.Manifest.Shards {
		if in, _ := k.keeps(e.ds.Key(i)); in {
			kept += e.ds.Object(i).Bytes()
		}
	}
	share := 0.9 * float64(e.ds.Bytes/4)
	if float64(kept) > share || float64(kept) < share-float64(size) {
		t.Fatalf("kept %d bytes of %d; the share is %.0f (shards of %d bytes)", kept, e.ds.Bytes, share, size)
	}
	if f := k.fraction(); math.Abs(f-0.9/4) > 0.01 {
		t.Fatalf("keep fraction %.3f, want 0.225", f)
	}
	// In a cluster a node keeps only the shards it owns.
	k.setPlacement(ownNone{})
	for i := range e.ds.Manifest.Shards {
		if in, _ := k.keeps(e.ds.Key(i)); in {
			t.Fatalf("shard %d kept by a node that owns nothing", i)
		}
	}
}

type ownNone struct{}

func (ownNone) Owns(string) bool { return false }
func (ownNone) Capacity() int64  { return 0 }

// The oracle ranks a shard no stream needs and nobody keeps (-1) before a
// kept one, and a kept one after every needed one: a full tier evicts
// what is outside the kept subset first.
func TestOracleRanksKeptAfterNeededBeforeOthers(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 8, PerShard: 4, SampleSize: 4000, Seed: 3}, 1<<20)
	counts := e.counts(t)
	cache, shards := e.fresh(t, 2*e.ds.Bytes) // keeps half the dataset: Fill 0.5 of half the memory
	p := NewPrefetcher(PrefetchConfig{Keep: KeepConfig{Fill: 0.5, ActiveFor: time.Hour}}, shards, cache)
	plan, err := shuffle.NewPlan(counts, shuffle.Settings{Seed: 1, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Open(e.ds, plan, shuffle.Batching{WorldSize: 1, BatchSize: 4}, 0)
	defer s.Close()
	s.Advance(5) // the shards of windows 0-4 are behind the reader
	var kept, dropped, needed int
	for i := range e.ds.Manifest.Shards {
		next := p.NextUse(e.ds.Key(i))
		in, _ := p.keep.keeps(e.ds.Key(i))
		switch {
		case plan.WindowOf(i) >= 5:
			needed++
			if next < 0 || next >= farBase {
				t.Errorf("shard %d, read later this epoch: NextUse %d", i, next)
			}
		case in:
			kept++
			if next < farBase {
				t.Errorf("shard %d, kept and read: NextUse %d, want past %d", i, next, farBase)
			}
		default:
			dropped++
			if next != -1 {
				t.Errorf("shard %d, read and not kept: NextUse %d, want -1", i, next)
			}
		}
	}
	if kept == 0 || dropped == 0 || needed == 0 {
		t.Fatalf("kept %d, dropped %d, needed %d: the case does not test all three", kept, dropped, needed)
	}
}
