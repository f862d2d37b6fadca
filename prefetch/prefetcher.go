package prefetch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// PrefetchConfig sets how far ahead of a reader shards are fetched.
type PrefetchConfig struct {
	// AheadBatches is how many of a stream's coming batches have their
	// bytes fetched ahead.
	AheadBatches int
	// AheadBytes caps the bytes fetched ahead for one stream; it is also
	// held within a quarter of the memory tier for sample ranges and the
	// counting of windows ahead, half of it for whole shards (which ask
	// the cache's oracle first), so what is fetched ahead does not evict
	// what is read now.
	AheadBytes int64
	// MaxRangeReads is the most sample range reads in flight, over every
	// stream: a read of one sample is small, so throughput needs many.
	MaxRangeReads int
	// RangeGap joins the byte ranges of two samples of one shard into one
	// read when fewer than this many bytes lie between them.
	RangeGap int64
	// Keep sets the subset of shards kept across epochs.
	Keep KeepConfig
}

// DefaultPrefetchConfig returns the defaults.
func DefaultPrefetchConfig() PrefetchConfig {
	return PrefetchConfig{
		AheadBatches:  16,      // enough to cover S3 latency at typical step rates
		AheadBytes:    1 << 30, // 1 GiB, and at most a quarter (half for whole shards) of the memory tier
		MaxRangeReads: 64,      // ~64 x 30 ms first byte: thousands of samples/s per node
		RangeGap:      4 << 10, // the tar headers between neighbours: bytes of samples not wanted now would be read twice
		Keep:          DefaultKeepConfig(),
	}
}

// Far next uses: the oracle ranks a kept shard that no open stream needs
// after every shard a stream needs (whose distance is under any epoch's
// length) by farBase plus its keep rank scaled by farScale.
const (
	farBase  = int64(1) << 50
	farScale = float64(int64(1) << 40)
)

// Prefetcher walks the plans of open streams ahead of their readers,
// decides how each window's bytes are fetched (whole shards when the
// window fits the memory tier, else the byte ranges of the samples the
// coming batches need), and tells the cache which shards are needed
// soonest (it is the cache's Oracle). Safe for concurrent use.
type Prefetcher struct {
	cfg    PrefetchConfig
	shards *Shards
	cache  *cache.Cache
	keep   *keeper
	log    *slog.Logger

	mu      sync.Mutex // guards streams and move
	streams map[*Stream]struct{}
	move    chan struct{} // closed (and replaced) when a stream moves, delivers or closes: see pace
	paced   atomic.Uint64 // waits of streams for their siblings (see pace)

	counting singleflight.Group // one count of a plan's window at a time
	held     *heldShards        // whole shards the streams' windows hold
	rangeSem chan struct{}      // bounds sample range reads in flight

	stallNanos    atomic.Int64
	rangeRequests atomic.Uint64
	rangeBytes    atomic.Uint64
	diskRangeHits atomic.Uint64
}

// NewPrefetcher returns a Prefetcher and makes it the cache's oracle.
func NewPrefetcher(cfg PrefetchConfig, shards *Shards, tiers *cache.Cache) *Prefetcher {
	d := DefaultPrefetchConfig()
	if cfg.AheadBatches <= 0 {
		cfg.AheadBatches = d.AheadBatches
	}
	if cfg.AheadBytes <= 0 {
		cfg.AheadBytes = d.AheadBytes
	}
	if cfg.MaxRangeReads <= 0 {
		cfg.MaxRangeReads = d.MaxRangeReads
	}
	if cfg.RangeGap < 0 {
		cfg.RangeGap = 0
	}
	if cfg.Keep.Fill <= 0 || cfg.Keep.Fill > 1 {
		cfg.Keep.Fill = d.Keep.Fill
	}
	if cfg.Keep.ActiveFor <= 0 {
		cfg.Keep.ActiveFor = d.Keep.ActiveFor
	}
	p := &Prefetcher{cfg: cfg, shards: shards, cache: tiers, log: shards.log, streams: map[*Stream]struct{}{}, move: make(chan struct{}),
		rangeSem: make(chan struct{}, cfg.MaxRangeReads), held: newHeldShards(shards)}
	p.keep = newKeeper(cfg.Keep, func() int64 { return keepCapacity(tiers) })
	shards.setDiskFilter(func(k storage.Key) bool { ok, _ := p.keep.keeps(k); return ok })
	tiers.SetOracle(p)
	return p
}

// keepCapacity is the bytes this node keeps across epochs: its disk tier,
// which holds kept shards alone, or without one half its memory tier (the
// other half for the windows being read).
func keepCapacity(c *cache.Cache) int64 {
	mem, disk := c.Capacity()
	if disk > 0 {
		return disk
	}
	return mem / 2
}

// KeepCapacity is the bytes this node keeps across epochs.
func (p *Prefetcher) KeepCapacity() int64 { return keepCapacity(p.cache) }

// Close stops the fetches of whole shards the streams' windows started
// and waits for them; call it once the streams are closed.
func (p *Prefetcher) Close() { p.held.close() }

// SetPlacement tells which shards this node owns in a cluster, and the
// cluster's cache capacity (see Placement); nil is a node alone.
func (p *Prefetcher) SetPlacement(pl Placement) { p.keep.setPlacement(pl) }

// KeepFraction is the share of each active dataset this node keeps.
func (p *Prefetcher) KeepFraction() float64 { return p.keep.fraction() }

// Stall is the total time streams have waited for shard bytes.
func (p *Prefetcher) Stall() time.Duration { return time.Duration(p.stallNanos.Load()) }

// RangeReads are the sample range reads from storage so far, and their bytes.
func (p *Prefetcher) RangeReads() (requests, bytes uint64) {
	return p.rangeRequests.Load(), p.rangeBytes.Load()
}

// DiskRangeHits counts samples read from the disk tier alone.
func (p *Prefetcher) DiskRangeHits() uint64 { return p.diskRangeHits.Load() }

// Streams is the number of open streams.
func (p *Prefetcher) Streams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

var _ cache.Oracle = (*Prefetcher)(nil)

// NextUse implements cache.Oracle: how many samples from now the shard is next
// needed by any open stream; else, for a shard of the kept subset, a
// distance past any epoch that grows with its keep rank; else -1.
func (p *Prefetcher) NextUse(key storage.Key) int64 {
	best := int64(-1)
	p.mu.Lock()
	for s := range p.streams {
		i := s.ds.ShardOf(key)
		if i < 0 {
			continue
		}
		pos := int(s.pos.Load())
		if n := s.plan.NextUse(i, pos); n >= 0 && (best < 0 || int64(n-pos) < best) {
			best = int64(n - pos)
		}
	}
	p.mu.Unlock()
	if best >= 0 {
		return best
	}
	if keep, r := p.keep.keeps(key); keep {
		return farBase + int64(r*farScale)
	}
	return -1
}

// Open registers a stream reading plan from position start with batching b.
// Close it when done.
func (p *Prefetcher) Open(ds *dataset.Dataset, plan *shuffle.Plan, b shuffle.Batching, start int) *Stream {
	s := &Stream{p: p, ds: ds, plan: plan, b: b, start: start, modes: map[int]fetchMode{},
		indexes: map[int32]*shardIndexEntry{}}
	s.ranges = newRangeBuffer(s)
	s.windows = newWindowRefs(p.held)
	s.pos.Store(int64(start))
	p.keep.use(ds, time.Now())
	p.mu.Lock()
	p.streams[s] = struct{}{}
	p.mu.Unlock()
	return s
}

// aheadBytes is the look-ahead budget of one stream.
func (p *Prefetcher) aheadBytes() int64 {
	mem, _ := p.cache.Capacity()
	return max(min(p.cfg.AheadBytes, mem/4), 1)
}

// wholeAheadBytes is the look-ahead budget of one stream for whole
// shards: half the memory tier. A whole shard fetched ahead evicts only
// what the cache's oracle says is needed later (MemoryWouldTake), and the
// shards of the windows being read are held, so it can take more than
// the quarter that bounds counting and sample ranges, whose bytes do not
// ask the oracle.
func (p *Prefetcher) wholeAheadBytes() int64 {
	mem, _ := p.cache.Capacity()
	return max(min(p.cfg.AheadBytes, mem/2), 1)
}

// rangeBudget bounds the bytes of the sample ranges one stream has wanted
// and not yet read: the look-ahead budget, and at least enough for every
// range read allowed in flight (MaxRangeReads) at ds's mean sample size,
// so the reads are not throttled below what storage can serve.
func (p *Prefetcher) rangeBudget(ds *dataset.Dataset) int64 {
	mean := int64(64 << 10)
	if n, _ := ds.NumSamples(); n > 0 {
		mean = max(ds.Bytes/int64(n), 1)
	}
	return max(p.aheadBytes(), int64(p.cfg.MaxRangeReads)*mean)
}

// countWindow makes window k of plan counted: its shards' counts are
// found (loading or reading their indexes) and given to the plan. One
// count per plan window at a time; the count goes on if ctx ends, for
// the other streams that wait on it.
func (p *Prefetcher) countWindow(ctx context.Context, ds *dataset.Dataset, plan *shuffle.Plan, k int) error {
	if plan.Counted(k) {
		return nil
	}
	ch := p.counting.DoChan(fmt.Sprintf("%p/%d", plan, k), func() (any, error) {
		return nil, countWindow(context.WithoutCancel(ctx), ds, plan, k, p.log)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// countWindow counts window k of plan from ds's shards.
func countWindow(ctx context.Context, ds *dataset.Dataset, plan *shuffle.Plan, k int, log *slog.Logger) error {
	shards := plan.WindowShards(k, nil)
	missing := 0
	for _, i := range shards {
		if _, ok := ds.Count(i); !ok {
			missing++
		}
	}
	if missing > 64 {
		log.Info("counting the samples of a shuffle window before its first batch: its shards are read whole (run `stoker index URL` once to skip this)",
			"url", ds.Manifest.URL, "window", k, "shards", missing)
	}
	if missing > 0 {
		if err := ds.CountShards(ctx, shards); err != nil {
			return err
		}
	}
	counts := make([]int, len(shards))
	for j, i := range shards {
		n, ok := ds.Count(i)
		if !ok {
			return fmt.Errorf("prefetch: shard %d of %s still uncounted", i, ds.Manifest.URL)
		}
		counts[j] = n
	}
	return plan.SetCounts(k, counts)
}

// InKeptSubset reports whether key's shard is in the kept subset of the
// cluster, whichever node owns it.
func (p *Prefetcher) InKeptSubset(key storage.Key) bool {
	in, _ := p.keep.inSubset(key)
	return in
}
