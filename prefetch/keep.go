package prefetch

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// Which shards a node keeps across epochs.
//
// A dataset is usually far larger than the cache, and every epoch reads
// every shard once, in an order that changes each epoch. The best a cache
// can do then (what Belady's MIN does on such a cyclic pattern) is to keep
// one fixed subset of the shards for good and stream the rest through
// without letting them displace it: each epoch after the first reads
// (data - kept) from storage. Stoker picks the subset by a hash of each
// shard's key (its rank, a fraction in [0, 1)), so every node and every
// restart picks the same one without coordination: of each active dataset
// the shards of lowest rank whose bytes fill the dataset's share of the
// keep capacity (Fill times the disk tier, or the memory tier without
// one, shared by the active datasets in proportion to their size). In a
// cluster the share is taken over the cluster's capacity and a node keeps
// only the shards it owns, so a dataset that fits the cluster's caches is
// read from storage once.
//
// Kept shards are written to the disk tier, the others only to memory;
// the oracle ranks a kept shard that no open stream needs after every
// shard a stream needs and before every shard nobody keeps, so a tier
// evicts the shards outside the subset first.

// Placement says which shards this node keeps for the cluster. Methods
// are called concurrently and must be quick.
type Placement interface {
	// Owns reports whether this node is the owner of the shard whose cache
	// key names object (storage.Key.Object); a node alone owns every shard.
	Owns(object string) bool
	// Capacity is the bytes the caches of every node of the cluster keep
	// across epochs (this node's alone when it is alone); 0 when unknown.
	Capacity() int64
}

// KeepConfig sets the kept subset.
type KeepConfig struct {
	// Fill is the share of the keep capacity given to kept shards; the
	// rest is left to the shards the streams read now.
	Fill float64
	// ActiveFor is how long a dataset counts as active after its last
	// stream opened: the keep capacity is shared by the active datasets.
	ActiveFor time.Duration
}

// DefaultKeepConfig returns the defaults.
func DefaultKeepConfig() KeepConfig {
	return KeepConfig{
		Fill:      0.95,      // the disk tier holds kept shards alone; some room for writes in flight
		ActiveFor: time.Hour, // a job's epochs follow each other within minutes
	}
}

// keeper decides which shards are kept. Safe for concurrent use.
type keeper struct {
	cfg   KeepConfig
	local func() int64 // this node's keep capacity in bytes

	mu     sync.Mutex // guards active; writers of snap hold it
	active map[string]*activeDataset

	placement atomic.Pointer[placementBox]
	snap      atomic.Pointer[keepSnapshot] // what keeps reads, remade by refresh
}

type placementBox struct{ p Placement }

// activeDataset is a dataset a stream opened recently.
type activeDataset struct {
	ds   *dataset.Dataset
	last time.Time
}

// keepSnapshot is the kept subset as of the last refresh: the fraction
// of the active bytes kept, and per active dataset the rank under which
// its shards are kept.
type keepSnapshot struct {
	fraction float64
	sets     []keptSet
}

type keptSet struct {
	ds        *dataset.Dataset
	threshold float64
}

func newKeeper(cfg KeepConfig, local func() int64) *keeper {
	k := &keeper{cfg: cfg, local: local, active: map[string]*activeDataset{}}
	k.snap.Store(&keepSnapshot{fraction: 1})
	return k
}

// rank is the shard's place in the keep order, a fraction in [0, 1): the
// same on every node and every run (FNV-1a, then a finaliser).
func rank(key storage.Key) float64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key.Object); i++ {
		h = (h ^ uint64(key.Object[i])) * 1099511628211
	}
	h = (h ^ 0xff) * 1099511628211
	for i := 0; i < len(key.ETag); i++ {
		h = (h ^ uint64(key.ETag[i])) * 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return float64(h>>11) / (1 << 53)
}

// setPlacement sets the cluster's placement; nil is a node alone.
func (k *keeper) setPlacement(p Placement) {
	if p == nil {
		k.placement.Store(nil)
	} else {
		k.placement.Store(&placementBox{p: p})
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refresh(time.Now())
}

// use marks ds active now.
func (k *keeper) use(ds *dataset.Dataset, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.active[ds.ID]; ok && a.ds == ds && now.Sub(a.last) < time.Minute {
		a.last = now
		return // refreshed within the minute: membership and capacity move slower
	}
	k.active[ds.ID] = &activeDataset{ds: ds, last: now}
	k.refresh(now)
}

// capacity is the bytes kept across epochs by this node, or by the
// cluster when there is one.
func (k *keeper) capacity() int64 {
	if b := k.placement.Load(); b != nil {
		if c := b.p.Capacity(); c > 0 {
			return c
		}
	}
	return k.local()
}

// refresh drops datasets inactive for ActiveFor and remakes the snapshot.
// Called with mu held.
func (k *keeper) refresh(now time.Time) {
	var total int64
	for id, a := range k.active {
		if now.Sub(a.last) > k.cfg.ActiveFor {
			delete(k.active, id)
			continue
		}
		total += a.ds.Bytes
	}
	s := &keepSnapshot{fraction: 1}
	if total > 0 {
		s.fraction = min(1, k.cfg.Fill*float64(k.capacity())/float64(total))
	}
	for _, a := range k.active {
		s.sets = append(s.sets, keptSet{ds: a.ds, threshold: threshold(a.ds, s.fraction)})
	}
	k.snap.Store(s)
}

// threshold is the rank under which ds's shards hold fraction of its
// bytes: the shards of lowest rank, taken while they fit.
func threshold(ds *dataset.Dataset, fraction float64) float64 {
	if fraction >= 1 {
		return 1
	}
	type shard struct {
		rank  float64
		bytes int64
	}
	seen := map[string]bool{}
	shards := make([]shard, 0, len(ds.Manifest.Shards))
	for i := range ds.Manifest.Shards {
		o := ds.Object(i)
		n := o.Bytes()
		if o.Length == 0 && seen[o.URL] {
			n = 0
		}
		seen[o.URL] = true
		shards = append(shards, shard{rank(ds.Key(i)), n})
	}
	slices.SortFunc(shards, func(a, b shard) int {
		switch {
		case a.rank < b.rank:
			return -1
		case a.rank > b.rank:
			return 1
		}
		return 0
	})
	budget := int64(fraction * float64(ds.Bytes))
	var sum int64
	for _, s := range shards {
		if sum+s.bytes > budget {
			return s.rank
		}
		sum += s.bytes
	}
	return 1
}

// fraction is the share of the active datasets' bytes that is kept.
func (k *keeper) fraction() float64 { return k.snap.Load().fraction }

// owns reports whether this node owns the shard of key.
func (k *keeper) owns(key storage.Key) bool {
	b := k.placement.Load()
	return b == nil || b.p.Owns(key.Object)
}

// inSubset reports whether key's shard is in the kept subset of the
// cluster, whichever node owns it, and its rank.
func (k *keeper) inSubset(key storage.Key) (bool, float64) {
	r := rank(key)
	s := k.snap.Load()
	for _, set := range s.sets {
		if set.ds.ShardOf(key) >= 0 {
			return r < set.threshold, r
		}
	}
	return r < s.fraction, r
}

// keeps reports whether key's shard is in the kept subset of this node,
// and its rank.
func (k *keeper) keeps(key storage.Key) (bool, float64) {
	in, r := k.inSubset(key)
	return in && k.owns(key), r
}

// keptElsewhere reports whether key's shard is in the cluster's kept
// subset and another node owns it.
func (k *keeper) keptElsewhere(key storage.Key) bool {
	in, _ := k.inSubset(key)
	return in && !k.owns(key)
}
