package shuffle

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// shape is a random plan input: counts and settings.
type shape struct {
	counts []int
	s      Settings
}

// randShape draws small datasets of every kind: no shards, one shard,
// empty shards, uneven shards, windows from 1 to past the shard count.
func randShape(r *rand.Rand) shape {
	n := r.IntN(60)
	if r.IntN(8) == 0 {
		n = r.IntN(2) // no shards or one
	}
	c := make([]int, n)
	per := r.IntN(40)
	for i := range c {
		switch r.IntN(6) {
		case 0:
			c[i] = 0
		case 1:
			c[i] = r.IntN(400)
		default:
			c[i] = per + r.IntN(3)
		}
	}
	s := Settings{Seed: r.Uint64(), Epoch: r.Uint64N(5)}
	switch r.IntN(5) {
	case 0:
		s.Window = 0
	case 1:
		s.Window = WindowAll
	default:
		s.Window = 1 + r.IntN(n+3)
	}
	s.NoShuffle = r.IntN(6) == 0
	return shape{c, s}
}

// reference materializes the order the plan describes, naively: the
// shard order from the shard bijection, windows as runs of W shards, each
// window's samples listed shard by shard, and position j of a window
// holding the listed sample perm_k(j).
func reference(c []int, s Settings) []Ref {
	n := len(c)
	w := s.Window
	if w == 0 {
		w = DefaultWindow
	}
	w = min(w, n)
	order := make([]int, n)
	sp := newPerm(uint64(n), mix(s.Seed^0x5374_6f6b_6572_0002, s.Epoch))
	for r := range order {
		order[r] = r
		if !s.NoShuffle {
			order[r] = int(sp.at(uint64(r)))
		}
	}
	var seq []Ref
	for k := 0; k*w < n; k++ {
		var list []Ref
		for _, sh := range order[k*w : min(k*w+w, n)] {
			for i := range c[sh] {
				list = append(list, Ref{int32(sh), int32(i)})
			}
		}
		wp := newPerm(uint64(len(list)), mix(mix(s.Seed^0x5374_6f6b_6572_0003, s.Epoch), uint64(k)))
		for j := range list {
			if s.NoShuffle {
				seq = append(seq, list[j])
			} else {
				seq = append(seq, list[wp.at(uint64(j))])
			}
		}
	}
	return seq
}

func TestPlanMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 400 {
		sh := randShape(r)
		p := mustPlan(t, sh.counts, sh.s)
		want := reference(sh.counts, sh.s)
		if got := p.Slice(0, p.Len()); !slices.Equal(got, want) {
			t.Fatalf("%d shards %+v: plan differs from the reference", len(sh.counts), sh.s)
		}
		for range 20 {
			if len(want) == 0 {
				break
			}
			i := r.IntN(len(want))
			if p.At(i) != want[i] {
				t.Fatalf("%+v: At(%d) = %+v, want %+v", sh.s, i, p.At(i), want[i])
			}
		}
		isPermutation(t, p, sh.counts)
	}
}

func TestRankAndShardAtAreInverse(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 17, 1000, 1 << 16, 1<<16 + 1} {
		for _, ns := range []bool{false, true} {
			p, err := NewLazyPlan(n, Settings{Seed: uint64(n), Epoch: 3, NoShuffle: ns})
			if err != nil {
				t.Fatal(err)
			}
			seen := make([]bool, n)
			for rank := range n {
				s := p.ShardAt(rank)
				if s < 0 || s >= n || seen[s] {
					t.Fatalf("n %d: ShardAt(%d) = %d, out of range or repeated", n, rank, s)
				}
				seen[s] = true
				if p.Rank(s) != rank {
					t.Fatalf("n %d: Rank(ShardAt(%d)) = %d", n, rank, p.Rank(s))
				}
			}
			if p.ShardAt(-1) != -1 || p.ShardAt(n) != -1 || p.Rank(n) != -1 || p.Rank(-1) != -1 {
				t.Fatalf("n %d: out-of-range rank or shard not -1", n)
			}
		}
	}
}

// A plan counted window by window, in random order, equals the plan built
// with every count, at every step of the way.
func TestLazyEqualsEager(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		sh := randShape(r)
		eager := mustPlan(t, sh.counts, sh.s)
		want := eager.Slice(0, eager.Len())
		lazy, err := NewLazyPlan(len(sh.counts), sh.s)
		if err != nil {
			t.Fatal(err)
		}
		ks := r.Perm(lazy.Windows())
		var buf []int
		for step, k := range ks {
			if lazy.Counted(k) {
				t.Fatalf("window %d counted before SetCounts", k)
			}
			shards := lazy.WindowShards(k, buf)
			cs := make([]int, len(shards))
			for i, s := range shards {
				cs[i] = sh.counts[s]
			}
			if err := lazy.SetCounts(k, cs); err != nil {
				t.Fatal(err)
			}
			if err := lazy.SetCounts(k, cs); err != nil {
				t.Fatalf("counting window %d again: %v", k, err)
			}
			if err := eager.SetCounts(k, cs); err != nil {
				t.Fatalf("eager plan refuses its own counts: %v", err)
			}
			if cs = slices.Clone(cs); len(cs) > 0 {
				cs[0]++
				if lazy.SetCounts(k, cs) == nil || eager.SetCounts(k, cs) == nil {
					t.Fatalf("window %d: other counts accepted", k)
				}
			}
			// Known covers exactly the counted prefix of windows.
			prefix := 0
			for prefix < lazy.Windows() && lazy.Counted(prefix) {
				prefix++
			}
			wantKnown := len(want)
			if prefix < lazy.Windows() {
				wantKnown, _, _ = eager.WindowRange(prefix)
			}
			n, complete := lazy.Total()
			if lazy.Known() != wantKnown || n != wantKnown || complete != (step == len(ks)-1) {
				t.Fatalf("after %d windows: Known %d Total (%d, %v), want %d", step+1, lazy.Known(), n, complete, wantKnown)
			}
			if got := lazy.Slice(0, lazy.Known()); !slices.Equal(got, want[:wantKnown]) {
				t.Fatalf("after %d windows: known prefix differs from the eager plan", step+1)
			}
			for k2 := range lazy.Windows() {
				lo, hi, ok := lazy.WindowRange(k2)
				elo, ehi, _ := eager.WindowRange(k2)
				if ok != (k2 < prefix) || ok && (lo != elo || hi != ehi) {
					t.Fatalf("window %d: lazy range [%d, %d) %v, eager [%d, %d), prefix %d", k2, lo, hi, ok, elo, ehi, prefix)
				}
			}
		}
	}
}

func TestNextUseMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 150 {
		sh := randShape(r)
		p := mustPlan(t, sh.counts, sh.s)
		seq := p.Slice(0, p.Len())
		// next[s]: the answer for each shard, from the end backwards.
		next := make([]int, len(sh.counts))
		for i := range next {
			next[i] = -1
		}
		for pos := len(seq); pos >= 0; pos-- {
			if pos < len(seq) {
				next[seq[pos].Shard] = pos
			}
			if pos%7 != 0 && pos != len(seq) && pos > 50 {
				continue // every position near the start, then a sample
			}
			for s := range sh.counts {
				if got := p.NextUse(s, pos); got != next[s] {
					t.Fatalf("%+v: NextUse(%d, %d) = %d, scan says %d", sh.s, s, pos, got, next[s])
				}
			}
		}
	}
}

// While a window's start is unknown, NextUse estimates it; once known, it
// is exact.
func TestNextUseLazy(t *testing.T) {
	c := counts(10, 20)
	c[7] = 0
	s := Settings{Seed: 8, Window: 2}
	eager := mustPlan(t, c, s)
	p, err := NewLazyPlan(len(c), s)
	if err != nil {
		t.Fatal(err)
	}
	count := func(k int) {
		t.Helper()
		var cs []int
		for _, sh := range p.WindowShards(k, nil) {
			cs = append(cs, c[sh])
		}
		if err := p.SetCounts(k, cs); err != nil {
			t.Fatal(err)
		}
	}
	count(0)
	count(3)
	for sh := range c {
		k := p.WindowOf(sh)
		got := p.NextUse(sh, 5)
		switch {
		case k == 0:
			if want := eager.NextUse(sh, 5); got != want {
				t.Errorf("shard %d in counted window 0: %d, want %d", sh, got, want)
			}
		case k == 3 && c[sh] == 0:
			if got != -1 {
				t.Errorf("empty shard %d in counted window 3: %d, want -1", sh, got)
			}
		default:
			// Windows before k hold the counted mean (about 21) per shard.
			lo0, hi0, _ := p.WindowRange(0)
			if want := hi0 - lo0 + (k-1)*2*int(p.countedSamples.Load())/int(p.countedShards.Load()); got < want-1 || got > want+1 {
				t.Errorf("shard %d in window %d: estimate %d, want %d", sh, k, got, want)
			}
		}
	}
	for k := range p.Windows() {
		count(k)
	}
	for sh := range c {
		for pos := range p.Len() + 1 {
			if got, want := p.NextUse(sh, pos), eager.NextUse(sh, pos); got != want {
				t.Fatalf("counted: NextUse(%d, %d) = %d, eager %d", sh, pos, got, want)
			}
		}
	}
}

// SetCounts from one goroutine while others read: run with -race.
func TestPlanConcurrentUse(t *testing.T) {
	c := counts(200, 30)
	s := Settings{Seed: 10, Window: 3}
	eager := mustPlan(t, c, s)
	want := eager.Slice(0, eager.Len())
	p, err := NewLazyPlan(len(c), s)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := range p.Windows() {
			var cs []int
			for _, sh := range p.WindowShards(k, nil) {
				cs = append(cs, c[sh])
			}
			if err := p.SetCounts(k, cs); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 0))
			var buf []Ref
			for {
				n, complete := p.Total()
				if n > 0 {
					i := r.IntN(n)
					if got := p.At(i); got != want[i] {
						t.Errorf("At(%d) = %+v while counting, want %+v", i, got, want[i])
						return
					}
					lo := r.IntN(n)
					buf = p.AppendRefs(buf[:0], lo, min(n, lo+50))
					if !slices.Equal(buf, want[lo:min(n, lo+50)]) {
						t.Errorf("AppendRefs(%d) differs while counting", lo)
						return
					}
				}
				p.NextUse(r.IntN(len(c)), r.IntN(len(want)))
				if complete {
					return
				}
			}
		})
	}
	// A plan from NewPlan fills its windows on demand, from many goroutines.
	eager = mustPlan(t, c, s)
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				i := r.IntN(len(want))
				if got := eager.At(i); got != want[i] {
					t.Errorf("eager At(%d) = %+v, want %+v", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

// In windows too big to walk, NextUse keeps shards' sorted positions;
// its answers still match a scan, also when the lists it holds are
// dropped to stay within their budget.
func TestNextUseBigWindows(t *testing.T) {
	c := make([]int, 300)
	for i := range c {
		c[i] = 90 + i%21
	}
	for _, w := range []int{WindowAll, 128} {
		for _, limit := range []int{0, 500} {
			p := mustPlan(t, c, Settings{Seed: 12, Window: w})
			p.uses.limit = limit
			seq := p.Slice(0, p.Len())
			next := make([]int, len(c))
			for i := range next {
				next[i] = -1
			}
			for pos := len(seq); pos >= 0; pos-- {
				if pos < len(seq) {
					next[seq[pos].Shard] = pos
				}
				if pos%211 != 0 {
					continue
				}
				for s := range c {
					if got := p.NextUse(s, pos); got != next[s] {
						t.Fatalf("window %d limit %d: NextUse(%d, %d) = %d, scan says %d", w, limit, s, pos, got, next[s])
					}
				}
			}
			if held := p.uses.held; held == 0 || limit > 0 && held > limit {
				t.Fatalf("window %d limit %d: %d positions held", w, limit, held)
			}
		}
	}
}

// FirstUses lists the shards with samples by their first position, as
// ordering by NextUse(s, 0) does, and stops when asked to.
func TestFirstUses(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 100 {
		sh := randShape(r)
		p := mustPlan(t, sh.counts, sh.s)
		var want []int
		for s, c := range sh.counts {
			if c > 0 {
				want = append(want, s)
			}
		}
		slices.SortFunc(want, func(a, b int) int { return p.NextUse(a, 0) - p.NextUse(b, 0) })
		var got []int
		for s, pos := range p.FirstUses() {
			if pos != p.NextUse(s, 0) {
				t.Fatalf("%+v: shard %d first used at %d, NextUse says %d", sh.s, s, pos, p.NextUse(s, 0))
			}
			got = append(got, s)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: FirstUses %v, by NextUse %v", sh.s, got, want)
		}
		n := 0
		for range p.FirstUses() {
			if n++; n == 2 {
				break
			}
		}
	}
	// A lazy plan yields the counted prefix only.
	c := counts(10, 3)
	lazy, _ := NewLazyPlan(len(c), Settings{Seed: 1, Window: 4})
	var cs []int
	for _, s := range lazy.WindowShards(0, nil) {
		cs = append(cs, c[s])
	}
	if err := lazy.SetCounts(0, cs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for s := range lazy.FirstUses() {
		if lazy.WindowOf(s) != 0 {
			t.Fatalf("shard %d of uncounted window %d yielded", s, lazy.WindowOf(s))
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d shards yielded, want the 4 of window 0", n)
	}
}
