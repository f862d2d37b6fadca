package cache

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Policy chooses which entries a full cache tier evicts.
type Policy int

const (
	// PolicyPlan uses the Oracle: it evicts first the entries no plan needs
	// (least recently used first), then the entry whose next use is
	// farthest away (Belady). A new entry that could only be admitted by
	// evicting an entry needed sooner than itself is not admitted to that
	// tier (a bypass). Without an Oracle it behaves as PolicyLRU.
	PolicyPlan Policy = iota
	// PolicyLRU evicts the least recently used entry and ignores the Oracle.
	PolicyLRU
)

// String returns "plan" or "lru".
func (p Policy) String() string {
	switch p {
	case PolicyPlan:
		return "plan"
	case PolicyLRU:
		return "lru"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Oracle tells the cache when an entry will next be needed.
type Oracle interface {
	// NextUse returns how many samples from now key is next needed by any
	// open stream (the minimum over streams), or -1 if no plan needs it.
	// The cache calls it while holding a tier's lock, from many goroutines
	// at once: it must be safe for concurrent use, quick, and must not
	// call back into the Cache.
	NextUse(key storage.Key) int64
}

// entry is one cached shard as a tier's index sees it.
type entry struct {
	key     storage.Key
	size    int64    // bytes of shard data
	lastUse uint64   // the index's clock at the latest insert or hit
	pins    int      // holders that forbid eviction: a write in progress, reads, Refs
	data    []byte   // memory tier: the shard's bytes
	ready   bool     // disk tier: the file is in place and may be read
	file    layout   // disk tier: where the parts of the file lie, once ready
	fd      *os.File // disk tier: the file, kept open for range reads (see keepFile)
	filling bool     // memory tier: bytes being copied into the Allocator's region
	dropped bool     // memory tier: removed by Close while pinned; freed at the last unpin
	// unverified: disk tier, found at Open after a stop that was not clean
	// (see cleanMark): verified before DiskExtent hands it out.
	unverified bool
	path       string // disk tier: the file's path, once DiskExtent has handed it out (a hash of the key: made once)
}

// index is one tier's bookkeeping: its entries, the bytes they hold, and
// the eviction policy. It does no I/O and is not safe for concurrent use:
// each tier guards its index with its own mutex.
type index struct {
	policy   Policy
	capacity int64
	used     int64
	clock    uint64 // logical time for recency; advanced by touch
	entries  map[storage.Key]*entry
}

func newIndex(p Policy, capacity int64) *index {
	return &index{policy: p, capacity: capacity, entries: map[storage.Key]*entry{}}
}

// touch marks e as used now.
func (x *index) touch(e *entry) {
	x.clock++
	e.lastUse = x.clock
}

// admit makes room for e and inserts it, unless e is larger than the tier
// or the policy refuses (see PolicyPlan) or pinned entries leave too little
// room. It returns the evicted entries, already removed from the index, for
// the caller to dispose of, and whether e was inserted. The caller checks
// beforehand that e.key is not in the index.
func (x *index) admit(e *entry, o Oracle) (victims []*entry, ok bool) {
	if e.size > x.capacity {
		return nil, false
	}
	if need := x.used + e.size - x.capacity; need > 0 {
		newNext := int64(-1)
		if x.policy == PolicyPlan && o != nil {
			newNext = o.NextUse(e.key)
		}
		if victims, ok = x.pick(need, o, newNext); !ok {
			return nil, false
		}
		for _, v := range victims {
			x.remove(v)
		}
	}
	x.entries[e.key] = e
	x.used += e.size
	x.touch(e)
	return victims, true
}

// evictOne evicts the entry the policy would evict first, unless the
// policy would rather bypass the new entry, whose next use is newNext, or
// no entry is evictable.
func (x *index) evictOne(o Oracle, newNext int64) (*entry, bool) {
	victims, ok := x.pick(1, o, newNext)
	if !ok || len(victims) == 0 {
		return nil, false
	}
	x.remove(victims[0])
	return victims[0], true
}

// trim evicts least recently used entries until the tier fits its
// capacity, and returns them.
func (x *index) trim() []*entry {
	if x.used <= x.capacity {
		return nil
	}
	victims, _ := x.pick(x.used-x.capacity, nil, -1)
	for _, v := range victims {
		x.remove(v)
	}
	return victims
}

// remove deletes e if it is still the entry for its key, and reports
// whether it was.
func (x *index) remove(e *entry) bool {
	if x.entries[e.key] != e {
		return false
	}
	delete(x.entries, e.key)
	x.used -= e.size
	return true
}

// candidate is an evictable entry and its next use (-1: none).
type candidate struct {
	e    *entry
	next int64
}

// pick chooses unpinned entries to evict until need bytes are freed, in the
// policy's order. Under PolicyPlan with an Oracle it gives up (returns
// false) rather than evict an entry needed sooner than the new entry, whose
// next use is newNext; it also returns false when pinned entries leave too
// little to evict. Entries are few, so a sort per eviction is fine.
func (x *index) pick(need int64, o Oracle, newNext int64) ([]*entry, bool) {
	plan := x.policy == PolicyPlan && o != nil
	cands := make([]candidate, 0, len(x.entries))
	for _, e := range x.entries {
		if e.pins > 0 {
			continue
		}
		next := int64(-1)
		if plan {
			next = o.NextUse(e.key)
		}
		cands = append(cands, candidate{e: e, next: next})
	}
	// Farthest next use first (no use at all is farthest); ties, and every
	// entry under LRU, least recently used first.
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := cmp.Compare(distance(b.next), distance(a.next)); c != 0 {
			return c
		}
		return cmp.Compare(a.e.lastUse, b.e.lastUse)
	})
	var victims []*entry
	var freed int64
	for _, c := range cands {
		if freed >= need {
			break
		}
		if plan && distance(c.next) < distance(newNext) {
			return nil, false // Belady bypass: keep what is needed sooner
		}
		victims = append(victims, c.e)
		freed += c.e.size
	}
	if freed < need {
		return nil, false
	}
	return victims, true
}

// distance orders next uses: a negative one (not needed) is farthest.
func distance(next int64) int64 {
	if next < 0 {
		return math.MaxInt64
	}
	return next
}
