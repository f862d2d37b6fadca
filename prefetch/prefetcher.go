package prefetch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stoker-data/stoker/shuffle"
)

// PrefetchConfig sets how far ahead of a reader shards are fetched.
type PrefetchConfig struct {
	// AheadBatches is how many of a stream's coming batches have their
	// shards fetched ahead.
	AheadBatches int
	// AheadBytes caps the bytes of the shards fetched ahead for one stream.
	AheadBytes int64
}

// DefaultPrefetchConfig returns the defaults.
func DefaultPrefetchConfig() PrefetchConfig {
	return PrefetchConfig{
		AheadBatches: 16,      // enough to cover S3 latency at typical step rates
		AheadBytes:   1 << 30, // 1 GiB: the memory tier must hold this and the batches in use
	}
}

// Prefetcher walks the plans of open streams ahead of their readers and
// tells the cache which shards are needed soonest (it is the cache's
// Oracle). Safe for concurrent use.
type Prefetcher struct {
	cfg    PrefetchConfig
	shards *Shards

	mu      sync.Mutex // guards streams
	streams map[*Stream]struct{}

	stallNanos atomic.Int64
}

// NewPrefetcher returns a Prefetcher and makes it the cache's oracle.
func NewPrefetcher(cfg PrefetchConfig, shards *Shards, cache *Cache) *Prefetcher {
	d := DefaultPrefetchConfig()
	if cfg.AheadBatches <= 0 {
		cfg.AheadBatches = d.AheadBatches
	}
	if cfg.AheadBytes <= 0 {
		cfg.AheadBytes = d.AheadBytes
	}
	p := &Prefetcher{cfg: cfg, shards: shards, streams: map[*Stream]struct{}{}}
	cache.SetOracle(p)
	return p
}

// Stall is the total time streams have waited for shard bytes.
func (p *Prefetcher) Stall() time.Duration { return time.Duration(p.stallNanos.Load()) }

// Streams is the number of open streams.
func (p *Prefetcher) Streams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// NextUse implements Oracle: how many samples from now the shard is next
// needed by any open stream, or -1.
func (p *Prefetcher) NextUse(key CacheKey) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := int64(-1)
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
	return best
}

// Open registers a stream reading plan from position start with batching b.
// Close it when done.
func (p *Prefetcher) Open(ds *Dataset, plan *shuffle.Plan, b shuffle.Batching, start int) *Stream {
	s := &Stream{p: p, ds: ds, plan: plan, b: b, start: start}
	s.pos.Store(int64(start))
	p.mu.Lock()
	p.streams[s] = struct{}{}
	p.mu.Unlock()
	return s
}

// Stream is one reader's walk through a plan. Its methods are called by one
// goroutine; the position is read concurrently by the oracle.
type Stream struct {
	p     *Prefetcher
	ds    *Dataset
	plan  *shuffle.Plan
	b     shuffle.Batching
	start int
	pos   atomic.Int64 // where the reader is in the plan
	ahead int          // steps before this one have had their prefetch issued

	Stall time.Duration // time this stream waited for shard bytes
}

// Advance moves the stream to step k and fetches the shards of the coming
// steps in the order they are needed, within the byte budget.
func (s *Stream) Advance(k int) {
	total := s.plan.Len()
	lo, _ := s.b.Batch(total, s.start, k)
	s.pos.Store(int64(lo))
	steps := s.b.Steps(total, s.start)
	from := max(s.ahead, k)
	until := min(k+s.p.cfg.AheadBatches, steps)
	if from >= until {
		return
	}
	var budget int64
	seen := map[int32]bool{}
	for j := from; j < until; j++ {
		blo, bhi := s.b.Batch(total, s.start, j)
		for _, r := range s.plan.Slice(blo, bhi) {
			if seen[r.Shard] {
				continue
			}
			seen[r.Shard] = true
			o := s.ds.Object(int(r.Shard))
			if budget > 0 && budget+o.Bytes() > s.p.cfg.AheadBytes {
				return // the budget is spent; later Advance calls go on from j
			}
			budget += o.Bytes()
			s.p.shards.Prefetch(o)
		}
		s.ahead = j + 1
	}
}

// Shard returns the bytes of shard i, waiting for its fetch if needed; the
// wait is counted as stall time. The caller releases the Ref.
func (s *Stream) Shard(ctx context.Context, i int) (*Ref, error) {
	key := s.ds.Key(i)
	if r, _, ok := s.p.shards.cache.Acquire(key); ok {
		return r, nil
	}
	t := time.Now()
	r, err := s.p.shards.getMissed(ctx, key, s.ds.Object(i))
	d := time.Since(t)
	s.Stall += d
	s.p.stallNanos.Add(int64(d))
	return r, err
}

// Close unregisters the stream.
func (s *Stream) Close() {
	s.p.mu.Lock()
	delete(s.p.streams, s)
	s.p.mu.Unlock()
}
