package shuffle

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// PlanVersion names the order this package gives an epoch. A cursor's
// position means the same samples only under the version it was made
// under; bump it whenever any order changes.
//
// Version 1 materialized the order with Fisher-Yates shuffles; version 2
// computes it with keyed bijections (see perm) and never materializes it.
const PlanVersion = 2

// DefaultWindow is the number of shards whose samples are shuffled
// together when Settings.Window is 0.
//
// The order mixes better as W grows (TestQuality; go test -v -run
// Quality prints it, here for 1024 shards of 256 samples, with Quality's
// two scores and in brackets their share of a full shuffle's):
//
//	W     diversity B=64  diversity B=256  spread
//	1     0.016 (0.02)    0.004 (0.00)     0.001
//	4     0.063 (0.06)    0.016 (0.02)     0.004
//	16    0.246 (0.25)    0.063 (0.07)     0.016
//	32    0.435 (0.45)    0.125 (0.14)     0.031
//	64    0.636 (0.66)    0.246 (0.28)     0.062
//	256   0.887 (0.91)    0.634 (0.72)     0.250
//	all   0.970 (1.00)    0.885 (1.00)     1.001
//
// Spread is W/shards for every windowed order: only a whole-epoch
// shuffle moves a sample's file-order neighbours apart across the epoch,
// and no W short of that gets close. Diversity is what a window buys: a
// batch of B holds about W(1 - e^(-B/W)) shards, nearly all of the
// window's once B is twice W. At W = 32 a per-rank batch of 64 draws from
// 28 shards (a full shuffle: 62); halving W halves that, doubling it
// gains half again.
//
// The price of W is memory: every shard of the window is read throughout
// the window, so W shards must stay cached at once, and a lazily counted
// plan needs W shards' counts before its first sample. 32 shards of 256
// MiB (a usual WebDataset shard) fill the default 8 GiB memory tier
// (prefetch/cache.DefaultConfig), so 32 is the largest window that a node
// with the defaults keeps whole in memory. Jobs that want more mixing and
// have the cache for it pass a larger Window, or WindowAll.
const DefaultWindow = 32

// WindowAll as Settings.Window shuffles the whole epoch as one window;
// so does any Window at least the number of shards.
const WindowAll = math.MaxInt32

// Bounds of a plan's inputs. Ref holds shards and samples as int32; a
// window's samples are counted in uint32 (positions inside a window).
const (
	MaxShards        = math.MaxInt32
	MaxShardSamples  = math.MaxInt32
	MaxWindowSamples = math.MaxUint32
)

// Settings are the inputs of an epoch's order besides the sample counts.
type Settings struct {
	// Seed of the job; the same seed gives the same order on every run.
	Seed uint64
	// Epoch number; each epoch has its own order.
	Epoch uint64
	// Window is the number of consecutive shards of the epoch's shard
	// order whose samples are shuffled together. 0 is DefaultWindow;
	// WindowAll, or any value at least the number of shards, shuffles the
	// whole epoch. Negative is invalid.
	Window int
	// NoShuffle keeps file order: shards in manifest order, samples in
	// shard order. Windows still group shards for lazy counting.
	NoShuffle bool
}

// Ref names one sample: its shard (index in the manifest) and its index
// inside that shard.
type Ref struct {
	Shard  int32
	Sample int32
}

// Plan is the global sample sequence S of one epoch: a pure function of
// the per-shard sample counts and the Settings, never of the world size
// or of the order in which counts were learnt.
//
// The shards are put in an order (ShardAt, Rank) by a keyed bijection of
// the shard indexes; window k is the run of shards [kW, (k+1)W) of that
// order; its n_k samples take positions [WindowRange(k)) of S, permuted
// by a keyed bijection of [0, n_k). Neither permutation is stored: the
// plan holds, per shard, the count of samples before it in its window
// (uint32), and per window its first position (int64). At and NextUse
// compute the rest.
//
// A plan from NewPlan knows every count and fills its per-window data as
// positions are asked for. A plan from NewLazyPlan learns counts window by
// window through SetCounts; positions [0, Known()) are fixed as soon as a
// prefix of windows is counted.
//
// A Plan is safe for concurrent use. Reads (At, AppendRefs, NextUse,
// Known, WindowRange, Rank, ShardAt) take no lock once the windows they
// need are filled: a window's data is written once, then published by an
// atomic store that readers load first.
type Plan struct {
	shards   int
	w        int // shards per window; 0 only when there are no shards
	windows  int
	shuffled bool
	order    perm   // rank -> shard
	winKey   uint64 // key of the window permutations
	src      []int  // NewPlan: counts by shard, not modified; nil for a lazy plan
	total    int    // NewPlan: the sum of src

	mu sync.Mutex // guards writes to cum, start and counted, and advancing filled
	// cum[r]: samples of the shards of r's window up to and including the
	// shard of rank r. A window's entries are written once, before its bit
	// in counted is set.
	cum []uint32
	// start[k]: position of window k's first sample; written for k <=
	// filled before filled is stored.
	start   []int64
	counted []atomic.Uint64 // bit k: window k's cum is written
	filled  atomic.Int64    // windows [0, filled) have cum and start
	// Counted shards and samples of a lazy plan, for NextUse's estimates.
	countedShards, countedSamples atomic.Int64
	uses                          useLists // NextUse's positions of shards in big windows
}

// NewPlan builds the plan of an epoch over shards with the given sample
// counts. It checks the counts and keeps the slice, which the caller must
// not modify afterwards; the per-window data is filled on first use, so a
// plan over millions of shards gives its first batch without a pass over
// them all. Errors wrap ErrInvalid.
func NewPlan(counts []int, s Settings) (*Plan, error) {
	p, err := newPlan(len(counts), s)
	if err != nil {
		return nil, err
	}
	var sum, most uint64
	for i, c := range counts {
		if c < 0 || c > MaxShardSamples {
			return nil, fmt.Errorf("%w: shuffle plan: shard %d has %d samples, want 0 to %d", ErrInvalid, i, c, MaxShardSamples)
		}
		sum += uint64(c) // at most 2^31 shards of 2^31 samples: no overflow
		most = max(most, uint64(c))
	}
	if sum > math.MaxInt {
		return nil, fmt.Errorf("%w: shuffle plan: %d samples in %d shards are more than %d positions", ErrInvalid, sum, len(counts), math.MaxInt)
	}
	p.src, p.total = counts, int(sum)
	if sum > MaxWindowSamples && uint64(p.w)*most > MaxWindowSamples {
		// Some window might hold more samples than uint32 counts: check
		// each (only datasets over 4 billion samples with huge shards get
		// here).
		for k := range p.windows {
			var n uint64
			lo, hi := p.windowRanks(k)
			for r := lo; r < hi; r++ {
				n += uint64(counts[p.ShardAt(r)])
			}
			if n > MaxWindowSamples {
				return nil, fmt.Errorf("%w: shuffle plan: window %d holds %d samples, more than %d; use a smaller window", ErrInvalid, k, n, uint64(MaxWindowSamples))
			}
		}
	}
	return p, nil
}

// NewLazyPlan returns the plan of an epoch over numShards shards whose
// counts are not known yet: SetCounts gives them window by window (in any
// order), and positions become known as a prefix of windows is counted.
// Errors wrap ErrInvalid.
//
// Both constructors allocate 4 bytes per shard and 8 per window at once
// (zeroed pages: nothing is written until a window is counted), a small
// part of what any listing of the shards takes.
func NewLazyPlan(numShards int, s Settings) (*Plan, error) {
	return newPlan(numShards, s)
}

func newPlan(n int, s Settings) (*Plan, error) {
	switch {
	case n < 0 || n > MaxShards:
		return nil, fmt.Errorf("%w: shuffle plan: %d shards, want 0 to %d", ErrInvalid, n, MaxShards)
	case s.Window < 0:
		return nil, fmt.Errorf("%w: shuffle plan: window %d is negative", ErrInvalid, s.Window)
	}
	w := s.Window
	if w == 0 {
		w = DefaultWindow
	}
	w = min(w, n)
	windows := 0
	if n > 0 {
		windows = (n-1)/w + 1
	}
	p := &Plan{
		shards:   n,
		w:        w,
		windows:  windows,
		shuffled: !s.NoShuffle,
		order:    newPerm(uint64(n), mix(s.Seed^0x5374_6f6b_6572_0002, s.Epoch)),
		winKey:   mix(s.Seed^0x5374_6f6b_6572_0003, s.Epoch),
		cum:      make([]uint32, n),
		start:    make([]int64, windows+1),
		counted:  make([]atomic.Uint64, (windows+63)/64),
	}
	return p, nil
}

// Shards is the number of shards of the plan.
func (p *Plan) Shards() int { return p.shards }

// Windows is the number of windows of the epoch.
func (p *Plan) Windows() int { return p.windows }

// WindowSize is the number of shards per window actually used (the last
// window may have fewer); 0 for a plan without shards.
func (p *Plan) WindowSize() int { return p.w }

// ShardAt returns the shard at the given rank of the epoch's shard order,
// or -1 for a rank outside [0, Shards()).
func (p *Plan) ShardAt(rank int) int {
	if rank < 0 || rank >= p.shards {
		return -1
	}
	if !p.shuffled {
		return rank
	}
	return int(p.order.at(uint64(rank)))
}

// Rank returns the position of shard in the epoch's shard order, or -1
// for a shard outside [0, Shards()).
func (p *Plan) Rank(shard int) int {
	if shard < 0 || shard >= p.shards {
		return -1
	}
	if !p.shuffled {
		return shard
	}
	return int(p.order.inv(uint64(shard)))
}

// WindowOf returns the window that holds shard's samples, or -1 for a
// shard outside [0, Shards()).
func (p *Plan) WindowOf(shard int) int {
	r := p.Rank(shard)
	if r < 0 {
		return -1
	}
	return r / p.w
}

// WindowShards appends to buf[:0] the shards of window k in shard order
// (the order SetCounts takes their counts in) and returns it; empty for a
// k outside [0, Windows()).
func (p *Plan) WindowShards(k int, buf []int) []int {
	buf = buf[:0]
	if k < 0 || k >= p.windows {
		return buf
	}
	lo, hi := p.windowRanks(k)
	for r := lo; r < hi; r++ {
		buf = append(buf, p.ShardAt(r))
	}
	return buf
}

// windowRanks is the range of ranks of window k.
func (p *Plan) windowRanks(k int) (lo, hi int) {
	lo = k * p.w
	return lo, min(lo+p.w, p.shards)
}

// Known is the number of positions whose samples are fixed: every sample
// for a plan from NewPlan; for a lazy plan, the samples of the longest
// counted prefix of windows.
func (p *Plan) Known() int {
	if p.src != nil {
		return p.total
	}
	return int(p.start[p.filled.Load()])
}

// Len is Known, under the name the callers of the first planner use: the
// number of samples of the epoch for a plan from NewPlan. A stream over a
// lazy plan must ask Total whether Len is the end of the epoch.
func (p *Plan) Len() int { return p.Known() }

// Total returns the number of samples of the epoch and true once every
// window is counted; until then, Known() and false.
func (p *Plan) Total() (n int, complete bool) {
	if p.src != nil {
		return p.total, true
	}
	f := p.filled.Load()
	return int(p.start[f]), int(f) == p.windows
}

// WindowRange returns the positions [lo, hi) of window k's samples, and
// false while they are not known (the windows before k, or k itself, are
// not all counted) or k is outside [0, Windows()).
func (p *Plan) WindowRange(k int) (lo, hi int, ok bool) {
	if k < 0 || k >= p.windows {
		return 0, 0, false
	}
	if int(p.filled.Load()) <= k {
		if p.src == nil {
			return 0, 0, false
		}
		p.fillThrough(k)
	}
	return int(p.start[k]), int(p.start[k+1]), true
}

// WindowAt returns the window holding position i, and false when i is
// outside [0, Known()).
func (p *Plan) WindowAt(i int) (int, bool) {
	if i < 0 || i >= p.Known() {
		return 0, false
	}
	return p.windowAt(i), true
}

// At returns the sample at position i, which must be in [0, Known()); At
// panics otherwise, as indexing a slice would. It does not allocate; it
// costs two keyed bijections and two binary searches (over the windows,
// then over the window's W shards).
func (p *Plan) At(i int) Ref {
	k := p.windowAt(i)
	lo := p.start[k]
	w := p.windowPerm(k, uint64(p.start[k+1]-lo))
	return p.ref(k, uint32(w.at(uint64(int64(i)-lo))))
}

// AppendRefs appends the samples at positions [lo, hi) to dst and returns
// it; lo and hi must be in [0, Known()]. A batch's samples cost less this
// way than by At one at a time: a window's shards are looked up once.
func (p *Plan) AppendRefs(dst []Ref, lo, hi int) []Ref {
	var shards [cachedShards]int32 // shards[x]: shard of rank x of the window, -1 until looked up
	for i := lo; i < hi; {
		k := p.windowAt(i)
		wlo, whi := p.start[k], p.start[k+1]
		w := p.windowPerm(k, uint64(whi-wlo))
		r0, r1 := p.windowRanks(k)
		if r1-r0 > cachedShards {
			for ; i < hi && int64(i) < whi; i++ {
				dst = append(dst, p.ref(k, uint32(w.at(uint64(int64(i)-wlo)))))
			}
			continue
		}
		for x := range r1 - r0 {
			shards[x] = -1
		}
		for ; i < hi && int64(i) < whi; i++ {
			x, sample := p.locate(k, uint32(w.at(uint64(int64(i)-wlo))))
			if shards[x] < 0 {
				shards[x] = int32(p.ShardAt(r0 + x))
			}
			dst = append(dst, Ref{Shard: shards[x], Sample: sample})
		}
	}
	return dst
}

// cachedShards bounds the windows whose shards AppendRefs keeps at hand.
const cachedShards = 64

// Slice returns the samples at positions [lo, hi) in a new slice.
func (p *Plan) Slice(lo, hi int) []Ref {
	return p.AppendRefs(make([]Ref, 0, max(hi-lo, 0)), lo, hi)
}

// windowAt returns the window that holds position i, filling windows of a
// plan from NewPlan as needed. It panics for a position outside [0,
// Known()).
func (p *Plan) windowAt(i int) int {
	f := int(p.filled.Load())
	if i < 0 || int64(i) >= p.start[f] {
		if p.src == nil || i < 0 || i >= p.total {
			panic(fmt.Sprintf("shuffle: position %d is outside the %d known positions of the plan", i, p.Known()))
		}
		f = p.fillAt(i)
	}
	// The first window whose end is past i.
	k, _ := slices.BinarySearch(p.start[1:f+1], int64(i)+1)
	return k
}

// windowPerm is the permutation of window k's n positions (the identity
// without shuffle).
func (p *Plan) windowPerm(k int, n uint64) perm {
	if !p.shuffled {
		return perm{n: 0}
	}
	return newPerm(n, mix(p.winKey, uint64(k)))
}

// ref names the j-th sample of window k, counting the window's samples
// shard by shard in shard order.
func (p *Plan) ref(k int, j uint32) Ref {
	x, sample := p.locate(k, j)
	lo, _ := p.windowRanks(k)
	return Ref{Shard: int32(p.ShardAt(lo + x)), Sample: sample}
}

// locate returns the j-th sample of window k as the rank of its shard
// within the window and its index in the shard.
func (p *Plan) locate(k int, j uint32) (x int, sample int32) {
	lo, hi := p.windowRanks(k)
	cw := p.cum[lo:hi]
	x, _ = slices.BinarySearch(cw, j+1) // j < 2^32 - 1: no overflow
	before := uint32(0)
	if x > 0 {
		before = cw[x-1]
	}
	return x, int32(j - before)
}

// Count returns the number of samples of shard, and false while its
// window is not counted or for a shard outside [0, Shards()).
func (p *Plan) Count(shard int) (n int, ok bool) {
	switch r := p.Rank(shard); {
	case r < 0:
		return 0, false
	case p.src != nil:
		return p.src[shard], true
	case !p.isCounted(r / p.w):
		return 0, false
	default:
		return p.count(r), true
	}
}

// count returns the samples of the shard at rank r, whose window's cum
// must be written.
func (p *Plan) count(r int) int {
	lo, _ := p.windowRanks(r / p.w)
	if r == lo {
		return int(p.cum[r])
	}
	return int(p.cum[r] - p.cum[r-1])
}
