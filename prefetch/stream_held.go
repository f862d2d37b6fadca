package prefetch

import (
	"context"
	"sync"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// heldShards are the whole shards the streams of a Prefetcher hold while
// their windows are read: fetched once, shared by every stream that reads
// them, released when the last of those streams is past their window. A
// memory tier too full to take a shard (it holds what is needed sooner)
// then costs that shard one fetch, not one per step or per stream. Safe
// for concurrent use.
type heldShards struct {
	shards *Shards
	ctx    context.Context // cancelled by close: stops the fetches in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards byKey
	byKey map[storage.Key]*heldShard
}

// heldShard is one shard's fetch, and how many streams hold it; ready is
// closed once ref (or err) is set.
type heldShard struct {
	users int
	ready chan struct{}
	ref   *cache.Ref
	err   error
}

func newHeldShards(shards *Shards) *heldShards {
	ctx, cancel := context.WithCancel(context.Background())
	return &heldShards{shards: shards, ctx: ctx, cancel: cancel, byKey: map[storage.Key]*heldShard{}}
}

// acquire adds a user of key's shard (object o), fetching it unless it is
// held or being fetched.
func (h *heldShards) acquire(key storage.Key, o storage.Object) *heldShard {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.byKey[key]; ok {
		s.users++
		return s
	}
	s := &heldShard{users: 1, ready: make(chan struct{})}
	h.byKey[key] = s
	h.shards.wg.Go(func() { // a background fetch: Shards.Wait waits for it
		defer close(s.ready)
		s.ref, s.err = h.shards.Get(h.ctx, o)
	})
	return s
}

// release drops a user of key's shard s; the last one releases its bytes
// (once fetched: a fetch in flight releases them when it ends).
func (h *heldShards) release(key storage.Key, s *heldShard) {
	h.mu.Lock()
	s.users--
	last := s.users == 0
	if last && h.byKey[key] == s {
		delete(h.byKey, key)
	}
	h.mu.Unlock()
	if !last {
		return
	}
	h.wg.Go(func() {
		<-s.ready
		if s.ref != nil {
			s.ref.Release()
		}
	})
}

// forget drops a failed fetch so the next acquire tries again.
func (h *heldShards) forget(key storage.Key, s *heldShard) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byKey[key] == s {
		delete(h.byKey, key)
	}
}

// close stops the fetches in flight and waits for them and the releases.
func (h *heldShards) close() {
	h.cancel()
	h.shards.Wait()
	h.wg.Wait()
}

// windowRefs is one stream's share of the held shards: those of its
// current and coming windows. Its methods are called by the stream's
// goroutine.
type windowRefs struct {
	h    *heldShards
	held map[int32]windowRef // by shard
}

type windowRef struct {
	key    storage.Key
	window int
	s      *heldShard
}

func newWindowRefs(h *heldShards) *windowRefs {
	return &windowRefs{h: h, held: map[int32]windowRef{}}
}

// fetch holds shard i (key, object o, of window w), fetching it unless a
// stream holds it already.
func (w *windowRefs) fetch(i int32, key storage.Key, window int, o storage.Object) {
	if _, ok := w.held[i]; ok {
		return
	}
	w.held[i] = windowRef{key: key, window: window, s: w.h.acquire(key, o)}
}

// wait returns shard i's bytes once fetched; fetch must have been called.
func (w *windowRefs) wait(ctx context.Context, i int32) (*cache.Ref, error) {
	r := w.held[i]
	select {
	case <-r.s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.s.err != nil {
		delete(w.held, i)
		w.h.forget(r.key, r.s)
		w.h.release(r.key, r.s)
		return nil, r.s.err
	}
	return r.s.ref, nil
}

// release lets go of the shards of the windows behind says are read.
func (w *windowRefs) release(behind func(window int) bool) {
	for i, r := range w.held {
		if behind(r.window) {
			delete(w.held, i)
			w.h.release(r.key, r.s)
		}
	}
}

// close lets go of every shard.
func (w *windowRefs) close() {
	for i, r := range w.held {
		delete(w.held, i)
		w.h.release(r.key, r.s)
	}
}
