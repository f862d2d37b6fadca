package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// Hint states, as PrefetchProgress.state reports them.
const (
	hintRunning     = "running"
	hintDone        = "done"
	hintExpired     = "expired"
	hintFailed      = "failed"
	hintUnreachable = "unreachable"
)

// hints runs this node's parts of prefetch hints and remembers where the
// hints it received were spread. Safe for concurrent use.
type hints struct {
	s      *Server
	ctx    context.Context // cancelled at shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup

	runs   *lru.Cache[string, *hintRun]   // this node's parts, by hint id; safe for concurrent use
	spread *lru.Cache[string, []hintPart] // hints received here: which node took which part
	next   *lru.Cache[string, struct{}]   // next-epoch prefetches already started
}

// hintPart is the share of a hint one node took, which it runs under id
// (the hint's, or the hint's with the round of a handover).
type hintPart struct {
	id, node string
	addr     string
	bytes    uint64
	shards   int
	err      string // why the node did not take it (a part in a hint's spread never has one)
}

// hintRun is this node's progress on its part of one hint.
type hintRun struct {
	bytesTotal, shardsTotal uint64
	started                 time.Time
	what                    string // the shards' common prefix, for the status page
	bytesDone, shardsDone   atomic.Uint64

	mu    sync.Mutex // guards state, err
	state string
	err   string
}

func newHints(s *Server) *hints {
	ctx, cancel := context.WithCancel(context.Background())
	runs, _ := lru.New[string, *hintRun](1024)
	spread, _ := lru.New[string, []hintPart](1024)
	next, _ := lru.New[string, struct{}](1024)
	return &hints{s: s, ctx: ctx, cancel: cancel, runs: runs, spread: spread, next: next}
}

// close stops every hint in progress and waits for it.
func (h *hints) close() {
	h.cancel()
	h.wg.Wait()
}

// order returns the shards of ds that the given epochs read, each once,
// in the order they are first needed, cut at budget bytes (0: no cap).
// Of a dataset larger than the cluster keeps, only the shards of the
// first epoch's first window and the kept subset are warmed: any other
// shard would be pushed out again before its epoch reads it.
func (h *hints) order(ds *dataset.Dataset, base shuffle.Settings, epochs []uint64, budget uint64) ([]storage.Object, error) {
	seen := make([]bool, len(ds.Manifest.Shards))
	var out []storage.Object
	var bytes uint64
	partial := h.s.prefetcher.KeepFraction() < 1
	mem, _ := h.s.cache.Capacity()
	for n, e := range epochs {
		st := base
		st.Epoch = e
		plan, err := h.s.plans.get(ds, st)
		if err != nil {
			return nil, err
		}
		for r := range len(seen) {
			i := plan.ShardAt(r)
			if seen[i] {
				continue
			}
			if partial && !(n == 0 && plan.WindowOf(i) == 0 && fits(ds, plan, 0, mem)) && !h.s.prefetcher.InKeptSubset(ds.Key(i)) {
				continue
			}
			o := ds.Object(i)
			if budget > 0 && bytes+uint64(o.Bytes()) > budget {
				return out, nil
			}
			seen[i] = true
			bytes += uint64(o.Bytes())
			out = append(out, o)
		}
	}
	return out, nil
}

// fits reports whether window k of plan fits a third of mem (it is read
// whole then, and stays in memory beside the next while it is read).
func fits(ds *dataset.Dataset, plan *shuffle.Plan, k int, mem int64) bool {
	var bytes int64
	for _, i := range plan.WindowShards(k, nil) {
		bytes += ds.Object(i).Bytes()
	}
	return 3*bytes <= mem
}

// spreadHint hands each owner its part of objs (in order) and returns the
// parts. An owner that cannot take its part (it died, and the cluster
// does not see it gone yet) is skipped: its shards go to the next owner in
// rendezvous order, the node that will own them once the cluster sees it
// gone, or to this node when no other is left, so a hint completes
// whenever storage can be read. A node that takes shards in a later round
// runs them as a part of its own (id.round), as it may run one already.
func (h *hints) spreadHint(ctx context.Context, id string, objs []storage.Object, deadline time.Time, onlyIfRoom bool) []hintPart {
	var out []hintPart
	skip := map[string]bool{}
	for round := 0; len(objs) > 0; round++ {
		partID := id
		if round > 0 {
			partID = fmt.Sprintf("%s.%d", id, round)
		}
		names, parts, addrs := h.s.owners(objs, skip)
		taken := make([]hintPart, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			part := parts[name]
			taken[i] = hintPart{id: partID, node: name, addr: addrs[name], shards: len(part)}
			for _, o := range part {
				taken[i].bytes += uint64(o.Bytes())
			}
			if name == h.s.selfName() {
				h.start(partID, part, deadline, onlyIfRoom)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.s.warmRemote(ctx, addrs[name], partID, part, deadline, onlyIfRoom); err != nil {
					taken[i].err = err.Error()
				}
			}()
		}
		wg.Wait()
		var left []storage.Object // the shards of the owners that failed, in order
		for _, p := range taken {
			if p.err == "" {
				out = append(out, p)
				continue
			}
			h.s.log.Warn("an owner cannot take its part of a prefetch hint: handing it to the next owner", "hint", id, "node", p.node, "shards", p.shards, "err", p.err)
			skip[p.node] = true
			left = append(left, parts[p.node]...)
		}
		objs = left
		if ctx.Err() != nil {
			break // the hint's caller is gone: what no one took is read on demand
		}
	}
	return out
}

// start runs this node's part of a hint in the background: the shards in
// order, as many at once as the fetch limit allows, each from the cache
// or storage (see warm).
func (h *hints) start(id string, objs []storage.Object, deadline time.Time, onlyIfRoom bool) {
	r := &hintRun{state: hintRunning, shardsTotal: uint64(len(objs)), started: time.Now(), what: commonPrefix(objs)}
	for _, o := range objs {
		r.bytesTotal += uint64(o.Bytes())
	}
	if old, ok := h.runs.Get(id); ok && old.running() {
		return // the same hint again: the first run goes on
	}
	h.runs.Add(id, r)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := h.ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, deadline)
		}
		defer cancel()
		g := errgroup.Group{}
		g.SetLimit(max(1, h.s.cfg.Shards.MaxFetches))
		for _, o := range objs {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				switch {
				case h.s.shards.Cached(o): // warm already: no read, so the hit counters stay the trainers'
				case onlyIfRoom && h.s.room() < o.Bytes():
					r.skip(o)
					return nil
				default:
					ref, err := h.warm(ctx, o)
					if err != nil {
						r.fail(err)
						return nil
					}
					ref.Release()
				}
				r.bytesDone.Add(uint64(o.Bytes()))
				r.shardsDone.Add(1)
				return nil
			})
		}
		_ = g.Wait()
		r.finish(ctx.Err() != nil && h.ctx.Err() == nil)
	}()
}

// warm reads o, which this node owns, into its cache for a hint. Storage
// is read in Shards' local flight, which this node's streams (Get) and the
// other nodes' reads (GetLocal, through ReadShard) share, so a hint that
// runs beside an epoch reading the same shard reads it once.
func (h *hints) warm(ctx context.Context, o storage.Object) (*cache.Ref, error) {
	return h.s.shards.GetLocal(ctx, o)
}

// room is the free space of the cache's tiers.
func (s *Server) room() int64 {
	m := s.cache.Metrics()
	return max(0, m.Memory.Capacity-m.Memory.Bytes) + max(0, m.Disk.Capacity-m.Disk.Bytes)
}

func (r *hintRun) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == hintRunning
}

func (r *hintRun) skip(o storage.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = fmt.Sprintf("skipped %s: no room in the cache", o.URL)
}

func (r *hintRun) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err.Error()
}

func (r *hintRun) finish(expired bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case expired:
		r.state = hintExpired
	case r.shardsDone.Load() < r.shardsTotal && r.err != "":
		r.state = hintFailed
	default:
		r.state = hintDone
	}
}

// progress returns this node's part of hint id.
func (h *hints) progress(id string) (*stokerv1.PrefetchProgress, bool) {
	r, ok := h.runs.Get(id)
	if !ok {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return &stokerv1.PrefetchProgress{
		Node: h.s.selfName(), BytesDone: r.bytesDone.Load(), BytesTotal: r.bytesTotal,
		ShardsDone: uint32(r.shardsDone.Load()), ShardsTotal: uint32(r.shardsTotal), State: r.state, Error: r.err,
	}, true
}

func newHintID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func unixMilli(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
