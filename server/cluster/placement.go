package cluster

import (
	"sync"
	"time"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/shuffle"
)

// placementTTL is how long a snapshot of the pool serves ownership
// questions: the cache's oracle asks once per entry per eviction.
const placementTTL = time.Second

// Placement tells the prefetcher which shards this node owns and what the
// pool's caches can keep (prefetch.Placement). Safe for concurrent use.
type Placement struct {
	node  *Node
	local func() int64 // this node's keep capacity in bytes

	mu   sync.Mutex // guards pool, at
	pool []shuffle.Member
	at   time.Time
}

var _ prefetch.Placement = (*Placement)(nil)

// NewPlacement returns node's placement; local is the bytes this node's
// cache keeps across epochs (its disk tier, or its memory tier without one).
func NewPlacement(node *Node, local func() int64) *Placement {
	return &Placement{node: node, local: local}
}

// snapshot returns the pool as of at most placementTTL ago.
func (p *Placement) snapshot() []shuffle.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool == nil || time.Since(p.at) > placementTTL {
		members := p.node.Pool()
		p.pool = make([]shuffle.Member, len(members))
		for i, m := range members {
			p.pool[i] = shuffle.Member{Name: m.Name, Weight: float64(m.Meta.Capacity)}
		}
		p.at = time.Now()
	}
	return p.pool
}

// Owns reports whether this node owns the shard of object (its cache
// key's Object), or is alone.
func (p *Placement) Owns(object string) bool {
	pool := p.snapshot()
	i := shuffle.Owner(object, pool)
	return i < 0 || pool[i].Name == p.node.Name()
}

// Capacity is what the pool's caches keep: this node's keep capacity
// scaled by the pool's cache capacity over this node's.
func (p *Placement) Capacity() int64 {
	var total, self float64
	for _, m := range p.snapshot() {
		total += m.Weight
		if m.Name == p.node.Name() {
			self = m.Weight
		}
	}
	local := p.local()
	if self <= 0 {
		return local
	}
	return int64(float64(local) * total / self)
}
