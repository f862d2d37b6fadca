package shuffle

import (
	"errors"
	"math"
	"testing"
)

// Bad settings and counts are errors wrapping ErrInvalid, never panics.
func TestPlanRejectsBadInput(t *testing.T) {
	big := MaxShardSamples
	for _, tc := range []struct {
		name   string
		counts []int
		s      Settings
	}{
		{"negative count", []int{3, -1, 2}, Settings{}},
		{"count past int32", []int{3, big + 1}, Settings{}},
		{"negative window", []int{3, 4}, Settings{Window: -2}},
		{"window past uint32", []int{big, big, big}, Settings{Window: WindowAll}},
		{"window past uint32, no shuffle", []int{big, big, big}, Settings{Window: 3, NoShuffle: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewPlan(tc.counts, tc.s); !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewPlan: %v, want ErrInvalid", err)
			}
		})
	}
	for _, n := range []int{-1, MaxShards + 1} {
		if _, err := NewLazyPlan(n, Settings{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewLazyPlan(%d): %v, want ErrInvalid", n, err)
		}
	}
	if _, err := NewLazyPlan(4, Settings{Window: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewLazyPlan with window -1: %v, want ErrInvalid", err)
	}

	p, err := NewLazyPlan(5, Settings{Seed: 1, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		k      int
		counts []int
	}{
		{"window -1", -1, []int{1, 1}},
		{"window past the end", 3, []int{1}},
		{"too few counts", 0, []int{1}},
		{"too many counts", 2, []int{1, 2}},
		{"negative count", 0, []int{1, -1}},
		{"count past int32", 1, []int{big + 1, 0}},
		{"count past int32 after good ones", 1, []int{0, big + 1}},
	} {
		if err := p.SetCounts(tc.k, tc.counts); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetCounts %s: %v, want ErrInvalid", tc.name, err)
		}
	}
	if p.Counted(0) || p.Counted(1) || p.Known() != 0 {
		t.Fatal("a refused SetCounts counted a window")
	}
	p3, err := NewLazyPlan(3, Settings{Window: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := p3.SetCounts(0, []int{big, big, 2}); !errors.Is(err, ErrInvalid) || p3.Counted(0) {
		t.Errorf("SetCounts of a window past uint32: %v, want ErrInvalid", err)
	}
}

// Counts at the limits: windows of two shards of 2^31-1 samples each.
func TestPlanHugeCounts(t *testing.T) {
	big := MaxShardSamples
	c := []int{big, 0, big, 1, big}
	p := mustPlan(t, c, Settings{Seed: 5, Window: 2})
	want := 3*big + 1
	if n, ok := p.Total(); n != want || !ok {
		t.Fatalf("Total = %d %v, want %d", n, ok, want)
	}
	lazy, err := NewLazyPlan(len(c), Settings{Seed: 5, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	for k := range lazy.Windows() {
		var cs []int
		for _, s := range lazy.WindowShards(k, nil) {
			cs = append(cs, c[s])
		}
		if err := lazy.SetCounts(k, cs); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]int{}
	for _, i := range []int{0, 1, big - 1, big, 2*big - 1, 2 * big, want - 2, want - 1} {
		r := p.At(i)
		if r.Shard < 0 || int(r.Shard) >= len(c) || r.Sample < 0 || int(r.Sample) >= c[r.Shard] {
			t.Fatalf("At(%d) = %+v, out of range", i, r)
		}
		if j, dup := seen[refKey(r)]; dup {
			t.Fatalf("At(%d) = At(%d) = %+v", i, j, r)
		}
		seen[refKey(r)] = i
		if l := lazy.At(i); l != r {
			t.Fatalf("At(%d): lazy %+v, eager %+v", i, l, r)
		}
		if u := p.NextUse(int(r.Shard), i); u != i {
			t.Fatalf("NextUse(%d, %d) = %d, want %d", r.Shard, i, u, i)
		}
	}
	// A plan of WindowAll over the same shards needs more than uint32
	// positions in its window: refused (see TestPlanRejectsBadInput);
	// under the limit it is fine.
	if _, err := NewPlan([]int{big, big, 1}, Settings{Window: WindowAll}); err != nil {
		t.Fatalf("window of exactly %d samples: %v", uint64(MaxWindowSamples), err)
	}
}

// At panics, as a slice index would, outside the known positions.
func TestAtOutOfRangePanics(t *testing.T) {
	p := mustPlan(t, []int{2, 3}, Settings{Seed: 1})
	lazy, _ := NewLazyPlan(2, Settings{Seed: 1})
	for _, tc := range []struct {
		p *Plan
		i int
	}{{p, -1}, {p, 5}, {p, math.MaxInt}, {lazy, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("At(%d) of a plan of %d known positions did not panic", tc.i, tc.p.Known())
				}
			}()
			tc.p.At(tc.i)
		}()
	}
}
