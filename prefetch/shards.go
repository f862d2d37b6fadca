package prefetch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/stoker-data/stoker/prefetch/wds"
)

// ShardsConfig bounds how shards are fetched.
type ShardsConfig struct {
	// MaxFetches is the most shards fetched from storage at once.
	MaxFetches int
	// Fetch sets part size and parallel ranges within one shard.
	Fetch FetchOptions
}

// DefaultShardsConfig returns the defaults.
func DefaultShardsConfig() ShardsConfig {
	return ShardsConfig{
		MaxFetches: 8, // with 4 ranges each: 32 requests in flight, enough for S3's ~30 ms first byte
	}
}

// Shards hands out the decompressed bytes of shards: from the cache, or
// fetched from storage once however many callers want the same shard at
// the same time, then cached. Safe for concurrent use.
type Shards struct {
	cfg     ShardsConfig
	sources *Sources
	cache   *Cache
	log     *slog.Logger
	sem     chan struct{}      // bounds fetches in flight
	group   singleflight.Group // one fetch per object+ETag

	fetches atomic.Uint64 // fetches started
	wg      sync.WaitGroup
}

// NewShards returns a Shards reading through sources into cache.
func NewShards(cfg ShardsConfig, sources *Sources, cache *Cache, log *slog.Logger) *Shards {
	if cfg.MaxFetches <= 0 {
		cfg.MaxFetches = DefaultShardsConfig().MaxFetches
	}
	return &Shards{cfg: cfg, sources: sources, cache: cache, log: log, sem: make(chan struct{}, cfg.MaxFetches)}
}

// Cached reports whether o is in the cache.
func (s *Shards) Cached(o Object) bool {
	return s.cache.Contains(CacheKey{Object: o.URL, ETag: o.ETag}) != TierNone
}

// Get returns o's decompressed bytes. The fetch itself is not cancelled by
// ctx (another caller may be waiting on it); ctx only stops this wait.
// The result is shared: treat it as read-only.
func (s *Shards) Get(ctx context.Context, o Object) ([]byte, error) {
	key := CacheKey{Object: o.URL, ETag: o.ETag}
	if data, _, ok := s.cache.Get(key); ok {
		return data, nil
	}
	ch := s.group.DoChan(key.Object+"\x00"+key.ETag, func() (any, error) { return s.fetch(key, o) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Prefetch starts fetching o in the background unless it is cached.
func (s *Shards) Prefetch(o Object) {
	if s.Cached(o) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if _, err := s.Get(context.Background(), o); err != nil {
			s.log.Debug("prefetch failed", "object", o.URL, "err", err)
		}
	}()
}

// Wait blocks until background prefetches have finished.
func (s *Shards) Wait() { s.wg.Wait() }

// Fetches is the number of shard fetches from storage started so far.
func (s *Shards) Fetches() uint64 { return s.fetches.Load() }

func (s *Shards) fetch(key CacheKey, o Object) ([]byte, error) {
	// A caller may have cached it between our Get miss and here.
	if data, _, ok := s.cache.Get(key); ok {
		return data, nil
	}
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	src, err := s.sources.For(o.URL)
	if err != nil {
		return nil, err
	}
	s.fetches.Add(1)
	raw, err := Fetch(context.Background(), src, o, s.cfg.Fetch)
	if err != nil {
		return nil, err
	}
	data, err := wds.Decompress(raw)
	if err != nil {
		return nil, &Error{Op: "read", Object: o.URL, Kind: ErrCorrupt, Err: err}
	}
	if err := s.cache.Put(key, data); err != nil && !errors.Is(err, ErrTooLarge) {
		s.log.Warn("cannot cache shard", "object", o.URL, "err", err)
	}
	return data, nil
}
