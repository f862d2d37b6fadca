package prefetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// ShardsConfig bounds how shards are fetched.
type ShardsConfig struct {
	// MaxFetches is the most shards fetched from storage at once.
	MaxFetches int
	// MaxGets is the most ranged reads of shards in flight, over every
	// fetch: the parts of one shard wait for slots with the others'
	// (default 4 per fetch). Fetch.Gets is ignored.
	MaxGets int
	// Fetch sets part size and parallel ranges within one shard. A
	// PartSize of 0 sizes the parts of each shard from what the source's
	// reads show of its connections (see storage.PartSize), 8 MiB where the
	// source shows nothing (file://); Parallel 0 is 8.
	Fetch storage.FetchOptions
	// MaxShardBytes is the most bytes one shard may hold, stored and as
	// cached (a WebDataset shard's tar bytes after gunzip, a columnar
	// unit's range): larger ones, gzip bombs among them, fail with
	// ErrTooLarge naming the object. 0 is DefaultMaxShardBytes of the
	// cache's memory tier.
	MaxShardBytes int64
}

// DefaultShardsConfig returns the defaults.
func DefaultShardsConfig() ShardsConfig {
	return ShardsConfig{
		MaxFetches: 8,  // with 4 ranges each: 32 requests in flight, enough for S3's ~30 ms first byte
		MaxGets:    32, // 4 per fetch: a shard's parts read in parallel where others leave slots
	}
}

// Remote reads shards from the other nodes of a cluster. Fetch is called
// concurrently; it returns o's decompressed bytes as cached by o's owner
// (which reads storage at most once however many nodes ask), ErrLocal when
// this node should read o from storage itself (it owns o, or it is alone),
// or any other error when the owner is down, slow or failed, in which case
// the caller reads storage directly. The returned bytes are read-only.
type Remote interface {
	Fetch(ctx context.Context, o storage.Object) ([]byte, error)
}

// RangeRemote is a Remote that also reads a byte range of a shard from its
// owner's cache (which reads the shard from storage if it has not got it):
// for samples of a shard another node keeps. FetchRange returns ErrLocal
// like Fetch, and the bytes [off, off+n) of o's decompressed bytes.
type RangeRemote interface {
	Remote
	FetchRange(ctx context.Context, o storage.Object, off, n int64) ([]byte, error)
}

// ErrLocal is returned by a Remote for a shard this node reads itself.
var ErrLocal = errors.New("owned by this node")

// Shards hands out the decompressed bytes of shards: from the cache, or
// fetched from storage once however many callers want the same shard at
// the same time, then cached. Safe for concurrent use.
type Shards struct {
	cfg     ShardsConfig
	sources *storage.Sources
	cache   *cache.Cache
	log     *slog.Logger
	sem     chan struct{}      // bounds fetches in flight
	group   singleflight.Group // one fetch per object+ETag
	remote  atomic.Pointer[remoteBox]
	// toDisk says which shards are written to the disk tier (nil: all);
	// set once, before serving.
	toDisk func(storage.Key) bool

	fetches   atomic.Uint64 // fetches from storage started
	peerReads atomic.Uint64 // shards read from their owner
	fallbacks atomic.Uint64 // remote reads (whole shards, sample ranges) that failed and went to storage
	wg        sync.WaitGroup
}

// Shards is the Catalog's ShardReader: it indexes a shard by reading it
// through the caches like any stream.
var _ dataset.ShardReader = (*Shards)(nil)

// shardParallel is the default of the ranges of one shard read at once:
// a shard of 8 MiB over S3 (a bandwidth-delay product of about 2 MiB) is
// read in one round.
const shardParallel = 8

// NewShards returns a Shards reading through sources into tiers.
func NewShards(cfg ShardsConfig, sources *storage.Sources, tiers *cache.Cache, log *slog.Logger) *Shards {
	if cfg.MaxFetches <= 0 {
		cfg.MaxFetches = DefaultShardsConfig().MaxFetches
	}
	if cfg.MaxShardBytes <= 0 {
		mem, _ := tiers.Capacity()
		cfg.MaxShardBytes = DefaultMaxShardBytes(mem)
	}
	if cfg.MaxGets <= 0 {
		cfg.MaxGets = 4 * cfg.MaxFetches
	}
	if cfg.Fetch.MaxSize <= 0 {
		cfg.Fetch.MaxSize = cfg.MaxShardBytes
	}
	if cfg.Fetch.Parallel <= 0 {
		cfg.Fetch.Parallel = shardParallel
	}
	cfg.Fetch.Gets = storage.NewGetSlots(cfg.MaxGets)
	return &Shards{cfg: cfg, sources: sources, cache: tiers, log: log, sem: make(chan struct{}, cfg.MaxFetches)}
}

type remoteBox struct{ r Remote }

// SetRemote makes Get read shards this node does not own from r before
// storage. Call it before serving; nil turns remote reads off.
func (s *Shards) SetRemote(r Remote) {
	if r == nil {
		s.remote.Store(nil)
		return
	}
	s.remote.Store(&remoteBox{r: r})
}

// Cached reports whether o is in the cache.
func (s *Shards) Cached(o storage.Object) bool {
	return s.cache.Contains(o.Key()) != cache.TierNone
}

// Get returns o's decompressed bytes: from the cache, else from its owner
// (see SetRemote), else from storage. The fetch itself is not cancelled by
// ctx (another caller may be waiting on it); ctx only stops this wait.
// The bytes are read-only and valid until the Ref is released, which the
// caller must do.
func (s *Shards) Get(ctx context.Context, o storage.Object) (*cache.Ref, error) {
	key := o.Key()
	if r, _, ok := s.cache.Acquire(key); ok {
		return r, nil
	}
	return s.getMissed(ctx, key, o)
}

// getMissed is Get after the cache has missed key, o's key.
func (s *Shards) getMissed(ctx context.Context, key storage.Key, o storage.Object) (*cache.Ref, error) {
	return s.wait(ctx, s.group.DoChan(key.Object+"\x00"+key.ETag, func() (any, error) { return s.fetch(key, o, true) }))
}

// GetLocal is Get without the remote step: the cache, else storage. The
// Peer service answers other nodes with it, so a read never hops twice.
func (s *Shards) GetLocal(ctx context.Context, o storage.Object) (*cache.Ref, error) {
	key := o.Key()
	if r, _, ok := s.cache.Acquire(key); ok {
		return r, nil
	}
	// Its own flight: waiting on a remote Get here could wait on itself
	// through another node.
	return s.wait(ctx, s.group.DoChan("local\x00"+key.Object+"\x00"+key.ETag, func() (any, error) { return s.fetch(key, o, false) }))
}

// wait hands each waiter of a flight its own Ref to the flight's bytes,
// which live on the Go heap.
func (s *Shards) wait(ctx context.Context, ch <-chan singleflight.Result) (*cache.Ref, error) {
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return cache.HeapRef(r.Val.([]byte)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// GetRangeRemote reads bytes [off, off+n) of o from its owner, or returns
// ErrLocal when this node owns o, is alone, or its Remote reads no ranges.
func (s *Shards) GetRangeRemote(ctx context.Context, o storage.Object, off, n int64) ([]byte, error) {
	rb := s.remote.Load()
	if rb == nil {
		return nil, ErrLocal
	}
	rr, ok := rb.r.(RangeRemote)
	if !ok {
		return nil, ErrLocal
	}
	data, err := rr.FetchRange(ctx, o, off, n)
	if err == nil && int64(len(data)) != n {
		err = &storage.Error{Op: "read", Object: o.URL, Kind: storage.ErrCorrupt, Err: fmt.Errorf("the owner sent %d bytes for a range of %d", len(data), n)}
	}
	switch {
	case err == nil:
		s.peerReads.Add(1)
	case !errors.Is(err, ErrLocal) && ctx.Err() == nil:
		s.fallbacks.Add(1) // the caller reads storage instead
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}

// Prefetch starts fetching o in the background unless it is cached.
func (s *Shards) Prefetch(o storage.Object) {
	if s.Cached(o) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r, err := s.Get(context.Background(), o)
		if err != nil {
			s.log.Debug("prefetch failed", "object", o.URL, "err", err)
			return
		}
		r.Release()
	}()
}

// Wait blocks until background prefetches have finished.
func (s *Shards) Wait() { s.wg.Wait() }

// Fetches is the number of shard fetches from storage started so far.
func (s *Shards) Fetches() uint64 { return s.fetches.Load() }

// PeerReads is the number of shards read from their owner so far.
func (s *Shards) PeerReads() uint64 { return s.peerReads.Load() }

// Fallbacks is the number of remote reads (whole shards and sample
// ranges) that failed and went to storage.
func (s *Shards) Fallbacks() uint64 { return s.fallbacks.Load() }

func (s *Shards) fetch(key storage.Key, o storage.Object, remote bool) ([]byte, error) {
	// A caller may have cached it between our Get miss and here: the
	// flight's waiters share its result, so it is a heap copy (Peek). Not
	// counted: the caller's Acquire counted this Get already.
	if data, _, ok := s.cache.Peek(key); ok {
		return data, nil
	}
	if rb := s.remote.Load(); remote && rb != nil {
		data, err := rb.r.Fetch(context.Background(), o)
		switch {
		case err == nil:
			s.peerReads.Add(1)
			s.put(key, o, data)
			return data, nil
		case !errors.Is(err, ErrLocal):
			s.fallbacks.Add(1)
			s.log.Warn("reading shard from its owner failed: reading storage", "object", o.URL, "err", err)
		}
	}
	if remote {
		// Storage is read in the local flight only, which GetLocal (the Peer
		// service answering other nodes, hints) shares: one read per shard
		// per node however it is asked for. The local flight never waits on
		// a remote one, so this cannot wait on itself.
		v, err, _ := s.group.Do("local\x00"+key.Object+"\x00"+key.ETag, func() (any, error) { return s.fetch(key, o, false) })
		if err != nil {
			return nil, err
		}
		return v.([]byte), nil
	}
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	src, err := s.sources.For(o.URL)
	if err != nil {
		return nil, err
	}
	s.fetches.Add(1)
	s.log.Debug("fetching a shard from storage", "object", o.URL, "kept", s.toDisk == nil || s.toDisk(key), "cached", s.cache.Contains(key))
	opt := s.cfg.Fetch
	if e, ok := storage.LinkOf(src); ok && opt.PartSize <= 0 {
		// With fetches to spare (few shards wanted at once: a small
		// look-ahead, the start of an epoch), half the free reads make the
		// shard's parts smaller, so it arrives sooner; the fetches that
		// start with this one find some too. With many, parts are sized
		// by the link alone: fewer requests move the same bytes.
		spare := 0
		if len(s.sem) <= cap(s.sem)/2 {
			spare = min(opt.Parallel, opt.Gets.Spare()/2)
		}
		opt.PartSize = storage.PartSize(o.Bytes(), e, spare)
	}
	if o.Length > 0 { // a columnar unit: its byte range, as stored
		data, err := storage.FetchRange(context.Background(), src, o, opt)
		if err != nil {
			return nil, limitHint(err)
		}
		s.put(key, o, data)
		return data, nil
	}
	raw, err := storage.Fetch(context.Background(), src, o, opt)
	if err != nil {
		return nil, limitHint(err)
	}
	data, err := decompressShard(o, raw, s.cfg.MaxShardBytes)
	if err != nil {
		return nil, err
	}
	s.put(key, o, data)
	return data, nil
}

// setDiskFilter makes put write to the disk tier only the shards f
// accepts (the kept subset): the others are read within their window,
// from memory, and would only push kept shards off the disk.
func (s *Shards) setDiskFilter(f func(storage.Key) bool) { s.toDisk = f }

func (s *Shards) put(key storage.Key, o storage.Object, data []byte) {
	if s.toDisk != nil && !s.toDisk(key) {
		if !s.cache.PutMemory(key, data) {
			s.log.Debug("the memory tier did not take a shard", "object", o.URL)
		}
		return
	}
	// Disk write failures are logged by the cache, rate-limited.
	if err := s.cache.PutAsync(key, data); err != nil && !errors.Is(err, storage.ErrTooLarge) && !errors.Is(err, storage.ErrUnavailable) {
		s.log.Warn("cannot cache shard", "object", o.URL, "err", err)
	}
}
