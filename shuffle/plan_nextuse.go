package shuffle

import (
	"iter"
	"math"
	"slices"
	"sync"
)

// shortSearch is the most steps NextUse expects to take walking a window
// before it keeps a shard's sorted positions instead.
const shortSearch = 64

// useListBudget bounds the positions NextUse keeps per plan: 4 MiB.
const useListBudget = 1 << 20

// useLists holds the sorted window positions of shards NextUse was asked
// about, for windows too big to search.
type useLists struct {
	mu    sync.RWMutex       // guards lists and held
	lists map[int32][]uint32 // shard -> positions of its samples in its window, ascending; not modified once stored
	held  int                // positions in lists
	limit int                // most positions held; 0 is useListBudget
}

func (u *useLists) get(shard int32) []uint32 {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.lists[shard]
}

// put stores list, dropping other shards' lists (any) to stay within the
// budget.
func (u *useLists) put(shard int32, list []uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lists == nil {
		u.lists = map[int32][]uint32{}
	}
	if _, ok := u.lists[shard]; ok {
		return // another goroutine stored it first
	}
	limit := u.limit
	if limit == 0 {
		limit = useListBudget
	}
	for s, l := range u.lists {
		if u.held+len(list) <= limit {
			break
		}
		delete(u.lists, s)
		u.held -= len(l)
	}
	u.lists[shard] = list
	u.held += len(list)
}

// NextUse returns the first position at or after pos whose sample is in
// shard, or -1 if the epoch needs the shard no more (or shard is outside
// [0, Shards())). It is exact whenever the start of the shard's window is
// known (always for a plan from NewPlan).
//
// While the window's start is not known (a lazy plan whose windows before
// it are not all counted), NextUse estimates the window's start: Known()
// plus, for each shard of the uncounted windows between, the mean count of
// the shards counted so far (1 before any is counted). It returns the
// larger of that and pos, or -1 if the window is counted and the shard has
// no samples.
//
// Inside its window a shard's samples are spread by a bijection, so an
// exact answer searches, one of two ways. Where the search is short (the
// shard's count, or its window's samples over that count, is at most
// 64: windows of up to 64 like shards) it walks positions forward from pos
// and maps the shard's samples to their positions, one step of each in
// turn, until either finds the answer: at most twice the smaller of the
// two. Otherwise it maps every sample of the shard once, keeps their
// positions sorted (up to useListBudget positions per plan, dropping
// others' to make room), and answers by binary search.
func (p *Plan) NextUse(shard, pos int) int {
	r := p.Rank(shard)
	if r < 0 {
		return -1
	}
	pos = max(pos, 0)
	k := r / p.w
	lo, hi, ok := p.WindowRange(k)
	if !ok {
		if p.isCounted(k) && p.count(r) == 0 {
			return -1
		}
		return max(pos, p.estimateStart(k))
	}
	if pos >= hi {
		return -1
	}
	c := p.count(r)
	if c == 0 {
		return -1
	}
	wlo, _ := p.windowRanks(k)
	first := 0 // the shard's first sample, counted in its window
	if r > wlo {
		first = int(p.cum[r-1])
	}
	from := max(pos, lo)
	if !p.shuffled {
		if from >= lo+first+c {
			return -1
		}
		return max(from, lo+first)
	}
	w := p.windowPerm(k, uint64(hi-lo))
	if n := hi - lo; min(c, n/c) > shortSearch && c <= useListBudget {
		list := p.uses.get(int32(shard))
		if list == nil {
			list = make([]uint32, c)
			for x := range list {
				list[x] = uint32(w.inv(uint64(first + x)))
			}
			slices.Sort(list)
			p.uses.put(int32(shard), list)
		}
		x, _ := slices.BinarySearch(list, uint32(from-lo))
		if x == len(list) {
			return -1
		}
		return lo + int(list[x])
	}
	best := -1 // earliest position >= from of the samples mapped so far
	q, j := from, first
	for {
		if q < hi {
			// Positions before q hold none of the shard's samples, so the
			// first one that does is the answer.
			if x := int(w.at(uint64(q - lo))); x >= first && x < first+c {
				return q
			}
			q++
		} else {
			return -1 // the rest of the window holds none
		}
		if j < first+c {
			if t := lo + int(w.inv(uint64(j))); t >= from && (best < 0 || t < best) {
				best = t
			}
			j++
		} else {
			return best // every sample is mapped
		}
	}
}

// estimateStart guesses the first position of window k, whose start is
// not known yet.
func (p *Plan) estimateStart(k int) int {
	f := int(p.filled.Load())
	known := p.start[f]
	mean := 1.0
	if n := p.countedShards.Load(); n > 0 {
		mean = float64(p.countedSamples.Load()) / float64(n)
	}
	est := float64(known) + float64((k-f)*p.w)*mean
	if est >= math.MaxInt {
		return math.MaxInt
	}
	return int(est)
}

// FirstUses yields the shards that have samples in the order the epoch
// first needs them, each with the position of its first sample, over the
// windows whose start is known (all of a plan from NewPlan; stop early by
// returning false). It walks each window from its start until it has seen
// every shard of the window that has samples: about (n/c) ln W positions
// for a window of W shards of c samples (n = Wc), but the whole window
// when one of them has few samples. Ordering shards by NextUse(s, 0)
// gives the same order at a search per shard.
func (p *Plan) FirstUses() iter.Seq2[int, int] {
	return func(yield func(shard, pos int) bool) {
		var seen []bool // seen[x]: the shard of rank x of the window was yielded
		for k := range p.windows {
			lo, hi, ok := p.WindowRange(k)
			if !ok {
				return
			}
			r0, r1 := p.windowRanks(k)
			seen = append(seen[:0], make([]bool, r1-r0)...)
			left := 0 // shards of the window with samples not yet seen
			for r := r0; r < r1; r++ {
				if p.count(r) > 0 {
					left++
				}
			}
			w := p.windowPerm(k, uint64(hi-lo))
			for i := lo; i < hi && left > 0; i++ {
				x, _ := p.locate(k, uint32(w.at(uint64(i-lo))))
				if seen[x] {
					continue
				}
				seen[x] = true
				left--
				if !yield(p.ShardAt(r0+x), i) {
					return
				}
			}
		}
	}
}
