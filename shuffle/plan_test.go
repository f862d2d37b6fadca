package shuffle

import (
	"slices"
	"testing"
	"testing/quick"
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

// key of a Ref for set checks.
func refKey(r Ref) int64 { return int64(r.Shard)<<32 | int64(r.Sample) }

func isPermutation(t *testing.T, p *Plan, c []int) {
	t.Helper()
	if p.Len() != total(c) {
		t.Fatalf("plan has %d samples, want %d", p.Len(), total(c))
	}
	seen := make(map[int64]bool, p.Len())
	for i := range p.Len() {
		r := p.At(i)
		if int(r.Shard) >= len(c) || int(r.Sample) >= c[r.Shard] || r.Sample < 0 {
			t.Fatalf("position %d: %+v out of range", i, r)
		}
		if seen[refKey(r)] {
			t.Fatalf("position %d: %+v repeated", i, r)
		}
		seen[refKey(r)] = true
	}
}

func TestPlanIsPermutation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts []int
		s      Settings
	}{
		{"full", counts(20, 7), Settings{Seed: 1, Epoch: 0}},
		{"window3", counts(20, 7), Settings{Seed: 1, Epoch: 0, Window: 3}},
		{"window1", counts(20, 7), Settings{Seed: 9, Epoch: 4, Window: 1}},
		{"noshuffle", counts(5, 3), Settings{NoShuffle: true}},
		{"empty shards", []int{0, 5, 0, 2}, Settings{Seed: 3, Window: 2}},
		{"no shards", nil, Settings{Seed: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) { isPermutation(t, NewPlan(tc.counts, tc.s), tc.counts) })
	}
}

func TestPlanProperties(t *testing.T) {
	f := func(seed uint64, epoch uint8, nShards, per, window uint8) bool {
		c := counts(int(nShards%40)+1, int(per%20))
		s := Settings{Seed: seed, Epoch: uint64(epoch), Window: int(window % 10)}
		a, b := NewPlan(c, s), NewPlan(c, s)
		if !slices.Equal(a.seq, b.seq) {
			t.Errorf("plan not deterministic for %+v", s)
			return false
		}
		isPermutation(t, a, c)
		return !t.Failed()
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 200}); err != nil {
		t.Fatal(err)
	}
}

func TestPlanNoShuffleKeepsFileOrder(t *testing.T) {
	c := []int{2, 3}
	p := NewPlan(c, Settings{NoShuffle: true, Seed: 5})
	want := []Ref{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {1, 2}}
	if got := p.Slice(0, p.Len()); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestPlanDiffersBetweenEpochsAndSeeds(t *testing.T) {
	c := counts(30, 10)
	base := NewPlan(c, Settings{Seed: 7, Epoch: 1})
	for _, s := range []Settings{{Seed: 7, Epoch: 2}, {Seed: 8, Epoch: 1}, {Seed: 7, Epoch: 1, Window: 4}} {
		if slices.Equal(base.seq, NewPlan(c, s).seq) {
			t.Errorf("%+v gives the same order as seed 7 epoch 1", s)
		}
	}
}

func TestPlanWindowKeepsShardsTogether(t *testing.T) {
	c := counts(12, 5)
	const w = 3
	p := NewPlan(c, Settings{Seed: 2, Epoch: 3, Window: w})
	// Every window of the sequence holds the samples of exactly w shards.
	pos := 0
	for pos < p.Len() {
		shards := map[int32]bool{}
		n := 0
		for pos+n < p.Len() && len(shards) <= w {
			shards[p.At(pos+n).Shard] = true
			if len(shards) > w {
				delete(shards, p.At(pos+n).Shard)
				break
			}
			n++
		}
		want := 0
		for s := range shards {
			want += c[s]
		}
		if n != want {
			t.Fatalf("window at %d has %d samples of shards %v, want %d: windows overlap", pos, n, shards, want)
		}
		pos += n
	}
}

// The ranks' batches partition the sequence, for every world size, and
// resuming from any step boundary yields the rest of the sequence.
func TestBatchesPartitionSequence(t *testing.T) {
	c := counts(9, 11)
	p := NewPlan(c, Settings{Seed: 11, Epoch: 2, Window: 2})
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
	p := NewPlan(c, Settings{Seed: 4, Epoch: 0})
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
		out = append(out, p.Slice(lo, hi)...)
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

func TestNextUse(t *testing.T) {
	p := NewPlan([]int{3, 3, 3}, Settings{NoShuffle: true})
	for _, tc := range []struct{ shard, pos, want int }{
		{0, 0, 0}, {1, 0, 3}, {2, 0, 6}, {0, 2, 2}, {0, 3, -1}, {2, 9, -1}, {5, 0, -1},
	} {
		if got := p.NextUse(tc.shard, tc.pos); got != tc.want {
			t.Errorf("NextUse(%d, %d) = %d, want %d", tc.shard, tc.pos, got, tc.want)
		}
	}
}
