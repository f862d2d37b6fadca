package shuffle

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// planV1 is the first planner, kept here as the baseline of the
// benchmarks: the epoch materialized as a []Ref by Fisher-Yates shuffles
// of the shards and of each window.
type planV1 struct{ seq []Ref }

func newPlanV1(counts []int, s Settings) *planV1 {
	total := 0
	for _, c := range counts {
		total += c
	}
	order := make([]int, len(counts))
	for i := range order {
		order[i] = i
	}
	r := rand.New(rand.NewPCG(s.Seed, s.Epoch))
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	w := s.Window
	if w <= 0 || w > len(order) {
		w = len(order)
	}
	seq := make([]Ref, 0, total)
	for lo := 0; lo < len(order); lo += w {
		start := len(seq)
		for _, sh := range order[lo:min(lo+w, len(order))] {
			for k := range counts[sh] {
				seq = append(seq, Ref{Shard: int32(sh), Sample: int32(k)})
			}
		}
		win := seq[start:]
		r.Shuffle(len(win), func(i, j int) { win[i], win[j] = win[j], win[i] })
	}
	return &planV1{seq: seq}
}

// heapAfter returns the live heap in bytes after a collection.
func heapAfter() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const firstBatch = 1024

// BenchmarkPlanBillion builds the plan of an epoch of 1e9 samples in 1e7
// shards of 100 and reads its first batch of 1024 samples: lazily (only
// window 0 counted, counts from a func), and from all counts (a []int the
// caller holds). It reports the plan's live heap (heap-B) and the time to
// the first batch (ns/op). The baseline is the first planner, which
// materializes every sample: at 1e9 samples it needs 8 GB and is not run;
// "v1-1e7" and "v2-1e7" compare both on 1e7 samples in 1e5 shards.
func BenchmarkPlanBillion(b *testing.B) {
	const shards, per = 10_000_000, 100
	countOf := func(shard int) int { return per - 3 + shard%7 } // 97..103, mean 100
	s := Settings{Seed: 1, Epoch: 2}

	b.Run("v2-lazy-1e9", func(b *testing.B) {
		var keep *Plan
		base := heapAfter()
		var buf []Ref
		var shardBuf, cs []int
		for b.Loop() {
			p, err := NewLazyPlan(shards, s)
			if err != nil {
				b.Fatal(err)
			}
			shardBuf = p.WindowShards(0, shardBuf)
			cs = cs[:0]
			for _, sh := range shardBuf {
				cs = append(cs, countOf(sh))
			}
			if err := p.SetCounts(0, cs); err != nil {
				b.Fatal(err)
			}
			buf = p.AppendRefs(buf[:0], 0, firstBatch)
			keep = p
		}
		b.ReportMetric(float64(heapAfter()-base), "heap-B")
		runtime.KeepAlive(keep)
	})

	counts := make([]int, shards)
	for i := range counts {
		counts[i] = countOf(i)
	}
	b.Run("v2-eager-1e9", func(b *testing.B) {
		var keep *Plan
		base := heapAfter() // counts are the caller's, not the plan's
		var buf []Ref
		for b.Loop() {
			p, err := NewPlan(counts, s)
			if err != nil {
				b.Fatal(err)
			}
			buf = p.AppendRefs(buf[:0], 0, firstBatch)
			keep = p
		}
		b.ReportMetric(float64(heapAfter()-base), "heap-B")
		runtime.KeepAlive(keep)
	})
	counts = nil

	small := make([]int, shards/100)
	for i := range small {
		small[i] = countOf(i)
	}
	b.Run("v1-1e7", func(b *testing.B) {
		var keep *planV1
		base := heapAfter()
		for b.Loop() {
			keep = newPlanV1(small, s)
			_ = keep.seq[:firstBatch]
		}
		b.ReportMetric(float64(heapAfter()-base), "heap-B")
		runtime.KeepAlive(keep)
	})
	b.Run("v2-1e7", func(b *testing.B) {
		var keep *Plan
		base := heapAfter()
		var buf []Ref
		for b.Loop() {
			p, err := NewPlan(small, s)
			if err != nil {
				b.Fatal(err)
			}
			buf = p.AppendRefs(buf[:0], 0, firstBatch)
			keep = p
		}
		b.ReportMetric(float64(heapAfter()-base), "heap-B")
		runtime.KeepAlive(keep)
	})
}

// BenchmarkAt reads positions of a plan of 1e7 samples in 1e5 shards one
// at a time, at random and in order, and in batches of 256 (AppendRefs);
// the baseline is the first planner's slice index.
func BenchmarkAt(b *testing.B) {
	c := counts(100_000, 99)
	for _, w := range []int{DefaultWindow, WindowAll} {
		s := Settings{Seed: 3, Window: w}
		p, err := NewPlan(c, s)
		if err != nil {
			b.Fatal(err)
		}
		n := p.Len()
		p.At(n - 1) // fill every window before timing
		name := fmt.Sprintf("W=%d", p.WindowSize())
		r := rand.New(rand.NewPCG(1, 1))
		idx := make([]int, 1<<16)
		for i := range idx {
			idx[i] = r.IntN(n)
		}
		b.Run(name+"/random", func(b *testing.B) {
			i := 0
			for b.Loop() {
				_ = p.At(idx[i&(len(idx)-1)])
				i++
			}
		})
		b.Run(name+"/sequential", func(b *testing.B) {
			i := 0
			for b.Loop() {
				_ = p.At(i % n)
				i++
			}
		})
		b.Run(name+"/batch256", func(b *testing.B) {
			buf := make([]Ref, 0, 256)
			i := 0
			for b.Loop() {
				lo := (i * 256) % (n - 256)
				buf = p.AppendRefs(buf[:0], lo, lo+256)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/256, "ns/sample")
		})
		b.Run(name+"/v1-random", func(b *testing.B) {
			v1 := newPlanV1(c, s)
			i := 0
			for b.Loop() {
				_ = v1.seq[idx[i&(len(idx)-1)]]
				i++
			}
		})
	}
}

// BenchmarkNextUse asks, as the cache's oracle does, when shards are next
// needed from a position that advances through an epoch of 1e4 shards of
// about 1000 samples: in windows of 32, where NextUse walks, and in one
// window of the whole epoch, where it keeps sorted positions, for a
// working set of 512 shards (a cache's worth: the lists fit) and of every
// shard (they do not: each call rebuilds one). The baseline is the first
// planner's NextUse, two array reads.
func BenchmarkNextUse(b *testing.B) {
	c := counts(10_000, 999)
	for _, tc := range []struct {
		name    string
		window  int
		working int
	}{{"W=32", DefaultWindow, len(c)}, {"W=all/512-shards", WindowAll, 512}, {"W=all/all-shards", WindowAll, len(c)}} {
		p, err := NewPlan(c, Settings{Seed: 3, Window: tc.window})
		if err != nil {
			b.Fatal(err)
		}
		n := p.Len()
		b.Run(tc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(2, 2))
			i := 0
			for b.Loop() {
				p.NextUse(r.IntN(tc.working), (i*7)%n)
				i++
			}
		})
	}
	b.Run("v1", func(b *testing.B) {
		first, last := make([]int, len(c)), make([]int, len(c))
		r := rand.New(rand.NewPCG(2, 2))
		i := 0
		for b.Loop() {
			s, pos := r.IntN(len(c)), i%1e7
			if last[s] >= pos {
				_ = max(first[s], pos)
			}
			i++
		}
	})
}

// BenchmarkPerm is one evaluation of a keyed bijection, forward and
// back, on a window-sized and an epoch-sized domain.
func BenchmarkPerm(b *testing.B) {
	for _, n := range []uint64{16, 3200, 1e7, 1e9} {
		p := newPerm(n, 99)
		b.Run(fmt.Sprintf("n=%d/at", n), func(b *testing.B) {
			x := uint64(0)
			for b.Loop() {
				x = p.at(x % n)
			}
		})
		b.Run(fmt.Sprintf("n=%d/inv", n), func(b *testing.B) {
			x := uint64(0)
			for b.Loop() {
				x = p.inv(x % n)
			}
		})
	}
}
