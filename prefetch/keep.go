package prefetch

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Which shards a node keeps across epochs.
//
// A dataset is usually far larger than the cache, and every epoch reads
// every shard once, in an order that changes each epoch. The best a cache
// can do then (what Belady's MIN does on such a cyclic pattern) is to keep
// one fixed subset of the shards for good and stream the rest through
// without letting them displace it: each epoch after the first reads
// (data - kept) from storage. Stoker picks the subset by a hash of each
// shard's key, so every node and every restart picks the same one without
// coordination: a shard is kept when its rank (the hash as a fraction of
// 2^64) is below the keep fraction, the share of the active datasets'
// bytes that the cache can hold. In a cluster a node keeps only shards it
// owns, and the fraction is taken over the cluster's capacity, so a dataset
// that fits the cluster's caches is read from storage once.
//
// Kept shards are fetched whole and written to the disk tier; the oracle
// ranks a kept shard that no open stream needs by its rank, after every
// shard a stream needs and before every shard nobody keeps, so a tier
// evicts the shards outside the subset first and the subset's highest
// ranks last among the kept.

// Placement says which shards this node keeps for the cluster. Methods
// are called concurrently and must be quick.
type Placement interface {
	// Owns reports whether this node is the owner of the shard whose cache
	// key names object (CacheKey.Object); a node alone owns every shard.
	Owns(object string) bool
	// Capacity is the distinct bytes the caches of every node of the
	// cluster can keep (this node's alone when it is alone), and 0 when
	// unknown.
	Capacity() int64
}

// KeepConfig sets the kept subset.
type KeepConfig struct {
	// Fill is the share of the keep capacity given to kept shards; the
	// rest is left to the shards the streams read now.
	Fill float64
	// ActiveFor is how long a dataset counts as active after its last
	// stream opened: the keep fraction is shared by the active datasets.
	ActiveFor time.Duration
}

// DefaultKeepConfig returns the defaults.
func DefaultKeepConfig() KeepConfig {
	return KeepConfig{
		Fill:      0.9,       // a tenth of the cache for the windows being read
		ActiveFor: time.Hour, // a job's epochs follow each other within minutes
	}
}

// keeper decides which shards are kept. Safe for concurrent use.
type keeper struct {
	cfg   KeepConfig
	local func() int64 // this node's keep capacity in bytes

	mu        sync.Mutex // guards active, placement
	active    map[string]activeDataset
	placement Placement

	frac atomic.Uint64 // the keep fraction's float64 bits, remade by use and setPlacement
}

// activeDataset is a dataset a stream opened recently.
type activeDataset struct {
	bytes int64
	last  time.Time
}

func newKeeper(cfg KeepConfig, local func() int64) *keeper {
	k := &keeper{cfg: cfg, local: local, active: map[string]activeDataset{}}
	k.frac.Store(math.Float64bits(1))
	return k
}

// rank is the shard's place in the keep order, a fraction in [0, 1): the
// same on every node and every run (FNV-1a, then a finaliser).
func rank(key CacheKey) float64 {
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
	k.mu.Lock()
	defer k.mu.Unlock()
	k.placement = p
	k.refresh()
}

// use marks a dataset of the given bytes active now.
func (k *keeper) use(id string, bytes int64, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.active[id] = activeDataset{bytes: bytes, last: now}
	for other, a := range k.active {
		if now.Sub(a.last) > k.cfg.ActiveFor {
			delete(k.active, other)
		}
	}
	k.refresh()
}

// fraction is the share of each active dataset that is kept.
func (k *keeper) fraction() float64 { return math.Float64frombits(k.frac.Load()) }

// refresh remakes the keep fraction. Called with mu held.
func (k *keeper) refresh() {
	var total int64
	for _, a := range k.active {
		total += a.bytes
	}
	capacity := k.local()
	if k.placement != nil {
		if c := k.placement.Capacity(); c > 0 {
			capacity = c
		}
	}
	f := 1.0
	if total > 0 {
		f = min(1, k.cfg.Fill*float64(capacity)/float64(total))
	}
	k.frac.Store(math.Float64bits(f))
}

// owns reports whether this node owns the shard of key.
func (k *keeper) owns(key CacheKey) bool {
	k.mu.Lock()
	p := k.placement
	k.mu.Unlock()
	return p == nil || p.Owns(key.Object)
}

// keeps reports whether key's shard is in the kept subset of this node,
// and its rank.
func (k *keeper) keeps(key CacheKey) (bool, float64) {
	r := rank(key)
	return r < k.fraction() && k.owns(key), r
}
