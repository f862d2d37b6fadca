package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// Where a dataset's sample counts came from (Dataset.CountsFrom).
const (
	CountsManifest = "manifest" // stored by an earlier open of the same objects
	CountsIndex    = "index"    // a wids-index.json beside the shards (stoker index)
	CountsCounting = "counting" // counted from the shards as streams reach them
	CountsFooters  = "footers"  // columnar: the row counts of the objects' footers
)

// Dataset is an opened dataset: its manifest and what the catalog knows of
// its shards. The manifest is immutable; a WebDataset's sample counts may
// be learnt after the open (see CountsFrom and CountShards), and a shard's
// sample index is loaded when the shard is read (ShardIndex). Safe for
// concurrent use.
type Dataset struct {
	// Manifest lists the shards. Its Samples are those known at the open;
	// Count has the ones learnt since.
	Manifest *shuffle.Manifest
	// Layout is how the dataset's format lays its samples out: what the
	// callers ask instead of telling the formats apart. Chosen at the
	// open; for a columnar dataset it holds the schema and units.
	Layout Layout
	// CountsFrom says where the sample counts came from (Counts*).
	CountsFrom string
	// ID identifies the dataset's objects and versions (and format): plans
	// and the kept subset are keyed by it.
	ID string
	// Bytes is the size of the dataset's objects, each counted once.
	Bytes int64

	keys    []storage.Key       // cache key of shard i, made once (a unit's is formatted)
	shardOf map[storage.Key]int // shard index by cache key

	counts    []atomic.Int64 // samples of shard i; -1 while uncounted
	uncounted atomic.Int64   // shards whose count is unknown
	stored    atomic.Bool    // see FromStored
	dsIndex   Index          // the index beside the shards, if it was found
	cat       *Catalog       // loads shard indexes; nil for a dataset made without one
}

// Key returns the cache key of shard i.
func (d *Dataset) Key(i int) storage.Key {
	return d.keys[i]
}

// ShardOf returns the index of the shard with key k, or -1.
func (d *Dataset) ShardOf(k storage.Key) int {
	if i, ok := d.shardOf[k]; ok {
		return i
	}
	return -1
}

// Object returns shard i as a Source object.
func (d *Dataset) Object(i int) storage.Object {
	return shardObject(d.Manifest.Shards[i])
}

// FromStored reports whether storage could not be reached at the latest
// open, so what an earlier open found was used.
func (d *Dataset) FromStored() bool { return d.stored.Load() }

// Count returns the number of samples of shard i, and false while it is
// not known.
func (d *Dataset) Count(i int) (int, bool) {
	n := d.counts[i].Load()
	return int(n), n >= 0
}

// Counted reports whether every shard's count is known.
func (d *Dataset) Counted() bool { return d.uncounted.Load() == 0 }

// NumSamples returns the samples of the counted shards and whether that is
// every shard.
func (d *Dataset) NumSamples() (n int, counted bool) {
	for i := range d.counts {
		if c := d.counts[i].Load(); c > 0 {
			n += int(c)
		}
	}
	return n, d.Counted()
}

// ShardsCounted is how many shards have a known count.
func (d *Dataset) ShardsCounted() int { return len(d.counts) - int(d.uncounted.Load()) }

// setCount records shard i's count (the first one wins: counts are facts
// of immutable object versions).
func (d *Dataset) setCount(i, n int) {
	if d.counts[i].CompareAndSwap(-1, int64(n)) && d.uncounted.Add(-1) == 0 && d.cat != nil {
		d.cat.counted(d)
	}
}

// CountShards makes the counts of the given shards known, loading each
// uncounted shard's index (see ShardIndex) with the catalog's parallelism.
func (d *Dataset) CountShards(ctx context.Context, shards []int) error {
	g, gctx := errgroup.WithContext(ctx)
	if d.cat != nil {
		g.SetLimit(d.cat.cfg.IndexParallel)
	}
	for _, i := range shards {
		if _, ok := d.Count(i); ok {
			continue
		}
		g.Go(func() error {
			_, err := d.ShardIndex(gctx, i)
			return err
		})
	}
	return g.Wait()
}

// PreloadShardIndexes returns a func that reads the sample indexes of
// shards is (a shuffle window's) from the index beside the shards, in a
// few joined reads instead of one each as each shard is first read; run
// it in the background. Until it ends, ShardIndex of those shards waits
// for it. nil: nothing to read (no such index, or every index is loaded
// or stored). A failed read is left to the shard's own load (ShardIndex),
// which reports it.
func (d *Dataset) PreloadShardIndexes(is []int) func(context.Context) {
	if !d.Layout.SampleIndexes() || d.cat == nil || d.dsIndex == nil {
		return nil
	}
	return d.cat.preloadShardIndexes(d, is)
}

// ShardIndex returns shard i's sample index: from the catalog's memory,
// the copy it stored on disk, the index beside the shards, or else by
// reading the whole shard (which the cache then holds). Loading it also
// counts the shard.
func (d *Dataset) ShardIndex(ctx context.Context, i int) (*wds.ShardIndex, error) {
	if !d.Layout.SampleIndexes() {
		return nil, fmt.Errorf("prefetch: shard %d of %s is a columnar unit, which has no sample index", i, d.Manifest.URL)
	}
	if d.cat == nil {
		return nil, fmt.Errorf("prefetch: dataset %s has no catalog to load shard indexes", d.Manifest.URL)
	}
	x, err := d.cat.shardIndex(ctx, d, i)
	if err != nil {
		return nil, err
	}
	if want, ok := d.Count(i); ok && want != x.Len() {
		return nil, &storage.Error{Op: "index", Object: d.Manifest.Shards[i].Object, Kind: storage.ErrCorrupt,
			Err: fmt.Errorf("the shard has %d samples, its %s said %d", x.Len(), d.CountsFrom, want)}
	}
	d.setCount(i, x.Len())
	return x, nil
}

// newDataset makes a dataset of m laid out by l; Samples of m are taken
// as known counts when known is true, else every count is unknown.
func newDataset(m *shuffle.Manifest, l Layout, known, stored bool) *Dataset {
	d := &Dataset{Manifest: m, Layout: l,
		keys: make([]storage.Key, len(m.Shards)), shardOf: make(map[storage.Key]int, len(m.Shards)),
		counts: make([]atomic.Int64, len(m.Shards))}
	h := sha256.New()
	h.Write([]byte(m.Format))
	var n [8]byte
	seen := map[string]bool{}
	for i, s := range m.Shards {
		d.keys[i] = d.Object(i).Key()
		d.shardOf[d.keys[i]] = i
		d.counts[i].Store(-1)
		if known && s.Samples >= 0 {
			d.counts[i].Store(int64(s.Samples))
		} else {
			d.uncounted.Add(1)
		}
		if !seen[s.Object] {
			seen[s.Object] = true
			d.Bytes += s.Size
		}
		h.Write([]byte(d.keys[i].Object))
		h.Write([]byte{0})
		h.Write([]byte(d.keys[i].ETag))
		binary.LittleEndian.PutUint64(n[:], uint64(s.Size))
		h.Write(n[:])
	}
	d.stored.Store(stored)
	d.ID = hex.EncodeToString(h.Sum(nil)[:16])
	return d
}

// withCounts returns the manifest with the counts known now, -1 where a
// shard is not counted yet.
func (d *Dataset) withCounts() *shuffle.Manifest {
	m := *d.Manifest
	m.Shards = append([]shuffle.Shard(nil), d.Manifest.Shards...)
	for i := range m.Shards {
		m.Shards[i].Samples, _ = d.Count(i)
	}
	return &m
}
