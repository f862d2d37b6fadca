package shuffle

import (
	"errors"
	"slices"
	"testing"
)

func counts(n, per int) []int {
	c := make([]int, n)
	for i := range c {
		c[i] = per + i%3 // uneven shards
	}
	return c
}

func total(c []int) int {
	t := 0
	for _, x := range c {
		t += x
	}
	return t
}

func mustPlan(t testing.TB, c []int, s Settings) *Plan {
	t.Helper()
	p, err := NewPlan(c, s)
	if err != nil {
		t.Fatalf("NewPlan(%d shards, %+v): %v", len(c), s, err)
	}
	return p
}

// key of a Ref for set checks.
func refKey(r Ref) int64 { return int64(r.Shard)<<32 | int64(r.Sample) }

func isPermutation(t testing.TB, p *Plan, c []int) {
	t.Helper()
	if n, complete := p.Total(); n != total(c) || !complete {
		t.Fatalf("plan has %d samples (complete %v), want %d", n, complete, total(c))
	}
	seen := make(map[int64]bool, p.Len())
	for i, r := range p.Slice(0, p.Len()) {
		if int(r.Shard) >= len(c) || int(r.Sample) >= c[r.Shard] || r.Sample < 0 || r.Shard < 0 {
			t.Fatalf("position %d: %+v out of range", i, r)
		}
		if seen[refKey(r)] {
			t.Fatalf("position %d: %+v repeated", i, r)
		}
		seen[refKey(r)] = true
		if a := p.At(i); a != r {
			t.Fatalf("position %d: At gives %+v, Slice %+v", i, a, r)
		}
	}
}

func TestPlanIsPermutation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts []int
		s      Settings
	}{
		{"default window", counts(70, 7), Settings{Seed: 1, Epoch: 0}},
		{"whole epoch", counts(20, 7), Settings{Seed: 1, Epoch: 0, Window: WindowAll}},
		{"window3", counts(20, 7), Settings{Seed: 1, Epoch: 0, Window: 3}},
		{"window1", counts(20, 7), Settings{Seed: 9, Epoch: 4, Window: 1}},
		{"noshuffle", counts(5, 3), Settings{NoShuffle: true}},
		{"empty shards", []int{0, 5, 0, 2}, Settings{Seed: 3, Window: 2}},
		{"all empty", []int{0, 0, 0}, Settings{Seed: 3, Window: 2}},
		{"one shard", []int{1000}, Settings{Seed: 3}},
		{"no shards", nil, Settings{Seed: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) { isPermutation(t, mustPlan(t, tc.counts, tc.s), tc.counts) })
	}
}

func TestPlanNoShuffleKeepsFileOrder(t *testing.T) {
	c := []int{2, 0, 3, 1}
	for _, w := range []int{0, 1, 2, WindowAll} {
		p := mustPlan(t, c, Settings{NoShuffle: true, Seed: 5, Window: w})
		want := []Ref{{0, 0}, {0, 1}, {2, 0}, {2, 1}, {2, 2}, {3, 0}}
		if got := p.Slice(0, p.Len()); !slices.Equal(got, want) {
			t.Fatalf("window %d: got %v, want %v", w, got, want)
		}
	}
}

func TestPlanDiffersBetweenEpochsAndSeeds(t *testing.T) {
	c := counts(30, 10)
	base := mustPlan(t, c, Settings{Seed: 7, Epoch: 1})
	seq := base.Slice(0, base.Len())
	for _, s := range []Settings{{Seed: 7, Epoch: 2}, {Seed: 8, Epoch: 1}, {Seed: 7, Epoch: 1, Window: 4}} {
		p := mustPlan(t, c, s)
		if slices.Equal(seq, p.Slice(0, p.Len())) {
			t.Errorf("%+v gives the same order as seed 7 epoch 1", s)
		}
	}
	// The shard order too.
	a, b := mustPlan(t, c, Settings{Seed: 7, Epoch: 1}), mustPlan(t, c, Settings{Seed: 7, Epoch: 2})
	same := 0
	for r := range len(c) {
		if a.ShardAt(r) == b.ShardAt(r) {
			same++
		}
	}
	if same == len(c) {
		t.Error("epochs 1 and 2 have the same shard order")
	}
}

func TestWindowZeroIsDefault(t *testing.T) {
	c := counts(3*DefaultWindow+5, 4)
	p0 := mustPlan(t, c, Settings{Seed: 3})
	pd := mustPlan(t, c, Settings{Seed: 3, Window: DefaultWindow})
	if p0.WindowSize() != DefaultWindow || p0.Windows() != 4 {
		t.Fatalf("window 0: %d windows of %d shards, want 4 of %d", p0.Windows(), p0.WindowSize(), DefaultWindow)
	}
	if !slices.Equal(p0.Slice(0, p0.Len()), pd.Slice(0, pd.Len())) {
		t.Fatal("window 0 and DefaultWindow give different orders")
	}
	all := mustPlan(t, c, Settings{Seed: 3, Window: WindowAll})
	if all.Windows() != 1 || all.WindowSize() != len(c) {
		t.Fatalf("WindowAll: %d windows of %d shards, want 1 of %d", all.Windows(), all.WindowSize(), len(c))
	}
}

// Every window's positions hold exactly the samples of its shards.
func TestPlanWindowsHoldTheirShards(t *testing.T) {
	c := counts(12, 5)
	c[4] = 0
	p := mustPlan(t, c, Settings{Seed: 2, Epoch: 3, Window: 5})
	if p.Windows() != 3 {
		t.Fatalf("%d windows, want 3", p.Windows())
	}
	next := 0
	for k := range p.Windows() {
		lo, hi, ok := p.WindowRange(k)
		if !ok || lo != next {
			t.Fatalf("window %d: range [%d, %d) ok %v, want it to start at %d", k, lo, hi, ok, next)
		}
		want := map[int64]bool{}
		for _, s := range p.WindowShards(k, nil) {
			if p.WindowOf(s) != k {
				t.Fatalf("shard %d listed in window %d, WindowOf says %d", s, k, p.WindowOf(s))
			}
			for i := range c[s] {
				want[refKey(Ref{int32(s), int32(i)})] = true
			}
		}
		if hi-lo != len(want) {
			t.Fatalf("window %d has %d positions, its shards %d samples", k, hi-lo, len(want))
		}
		for i := lo; i < hi; i++ {
			if !want[refKey(p.At(i))] {
				t.Fatalf("position %d of window %d holds %+v of shard in window %d", i, k, p.At(i), p.WindowOf(int(p.At(i).Shard)))
			}
		}
		next = hi
	}
	if next != p.Len() {
		t.Fatalf("windows end at %d, the plan at %d", next, p.Len())
	}
}

// The ranks' batches partition the sequence, for every world size, and
// resuming from any step boundary yields the rest of the sequence.
func TestBatchesPartitionSequence(t *testing.T) {
	c := counts(9, 11)
	p := mustPlan(t, c, Settings{Seed: 11, Epoch: 2, Window: 2})
	for _, world := range []int{1, 2, 3, 4, 7} {
		for _, bs := range []int{1, 4, 16, 200} {
			for _, dropLast := range []bool{false, true} {
				var got []int
				steps := Batching{WorldSize: world, BatchSize: bs, DropLast: dropLast}.Steps(p.Len(), 0)
				for r := range world {
					b := Batching{Rank: r, WorldSize: world, BatchSize: bs, DropLast: dropLast}
					if err := b.Validate(); err != nil {
						t.Fatal(err)
					}
					for k := range steps {
						lo, hi := b.Batch(p.Len(), 0, k)
						if hi-lo > bs {
							t.Fatalf("batch of %d > %d", hi-lo, bs)
						}
						for i := lo; i < hi; i++ {
							got = append(got, i)
						}
					}
				}
				slices.Sort(got)
				want := p.Len()
				if dropLast {
					want = p.Len() / (world * bs) * (world * bs)
				}
				if len(got) != want {
					t.Fatalf("world %d bs %d dropLast %v: %d positions, want %d", world, bs, dropLast, len(got), want)
				}
				for i, x := range got {
					if x != i {
						t.Fatalf("world %d bs %d: position %d missing or repeated", world, bs, i)
					}
				}
			}
		}
	}
}

func TestResumeFromCursorYieldsRest(t *testing.T) {
	c := counts(6, 9)
	p := mustPlan(t, c, Settings{Seed: 4, Epoch: 0})
	b := Batching{WorldSize: 1, BatchSize: 5}
	full := read(p, b, 0)
	for start := range p.Len() + 1 {
		if rest := read(p, b, start); !slices.Equal(rest, full[start:]) {
			t.Fatalf("resume at %d: got %d samples, want the %d after it", start, len(rest), len(full)-start)
		}
	}
	// A change of world size at a cursor loses and repeats nothing.
	cur := b.After(p.Len(), 0, 3)
	b4 := Batching{WorldSize: 4, BatchSize: 2}
	var got []int
	for k := range b4.Steps(p.Len(), cur) {
		for r := range 4 {
			b4.Rank = r
			lo, hi := b4.Batch(p.Len(), cur, k)
			for i := lo; i < hi; i++ {
				got = append(got, i)
			}
		}
	}
	slices.Sort(got)
	if len(got) != p.Len()-cur || got[0] != cur {
		t.Fatalf("after resize: %d positions from %d, want %d from %d", len(got), got[0], p.Len()-cur, cur)
	}
}

func read(p *Plan, b Batching, start int) []Ref {
	var out []Ref
	for k := range b.Steps(p.Len(), start) {
		lo, hi := b.Batch(p.Len(), start, k)
		out = p.AppendRefs(out, lo, hi)
	}
	return out
}

func TestValidate(t *testing.T) {
	for _, b := range []Batching{{BatchSize: 0, WorldSize: 1}, {BatchSize: 1, WorldSize: 0}, {BatchSize: 1, WorldSize: 2, Rank: 2}, {BatchSize: 1, WorldSize: 2, Rank: -1}} {
		if err := b.Validate(); err == nil {
			t.Errorf("%+v: no error", b)
		}
	}
}

func TestCursorCheck(t *testing.T) {
	for _, tc := range []struct {
		c  Cursor
		ok bool
	}{
		{Cursor{Epoch: 1, Position: 5}, true},
		{Cursor{Epoch: 1, Position: 5, Plan: PlanVersion}, true},
		{Cursor{Epoch: 1, Position: 5, Plan: 1}, false},
		{Cursor{Epoch: 1, Position: -1}, false},
	} {
		err := tc.c.Check()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%+v: Check() = %v, want ok %v", tc.c, err, tc.ok)
		}
	}
}

func TestNextUse(t *testing.T) {
	p := mustPlan(t, []int{3, 3, 3}, Settings{NoShuffle: true})
	for _, tc := range []struct{ shard, pos, want int }{
		{0, 0, 0}, {1, 0, 3}, {2, 0, 6}, {0, 2, 2}, {0, 3, -1}, {2, 9, -1}, {5, 0, -1}, {-1, 0, -1}, {1, -4, 3},
	} {
		if got := p.NextUse(tc.shard, tc.pos); got != tc.want {
			t.Errorf("NextUse(%d, %d) = %d, want %d", tc.shard, tc.pos, got, tc.want)
		}
	}
}

// The hot paths do not allocate.
func TestHotPathsDoNotAllocate(t *testing.T) {
	c := counts(300, 50)
	for _, w := range []int{4, WindowAll} {
		p := mustPlan(t, c, Settings{Seed: 1, Window: w})
		n := p.Len()
		p.At(n - 1) // fill the windows
		buf := make([]Ref, 0, 128)
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			i = (i + 7919) % (n - 128)
			p.At(i)
			buf = p.AppendRefs(buf[:0], i, i+128)
			p.NextUse(int(p.At(i).Shard), i) // walks: lists are for big windows
		})
		if allocs != 0 && w != WindowAll {
			t.Errorf("window %d: %v allocations per At, AppendRefs and NextUse", w, allocs)
		}
		if w == WindowAll {
			// NextUse keeps a list per shard asked about, once.
			allocs = testing.AllocsPerRun(200, func() {
				i = (i + 7919) % (n - 128)
				p.At(i)
				buf = p.AppendRefs(buf[:0], i, i+128)
			})
			if allocs != 0 {
				t.Errorf("whole epoch: %v allocations per At and AppendRefs", allocs)
			}
		}
	}
}
