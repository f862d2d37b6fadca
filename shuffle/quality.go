package shuffle

import "fmt"

// Quality is how well an epoch order S of N samples mixes the dataset,
// by two scores that are easy to compute for any loader's order. In
// Python, for an order given as a list of (shard, sample) pairs and the
// per-shard counts:
//
//	def quality(order, counts, B):
//	    N = len(order)
//	    best = min(B, sum(1 for c in counts if c > 0))
//	    full = N // B
//	    diversity = sum(len({s for s, _ in order[j*B:(j+1)*B]})
//	                    for j in range(full)) / full / best
//	    pos = {ref: i for i, ref in enumerate(order)}
//	    gaps = [abs(pos[(s, k+1)] - pos[(s, k)])
//	            for s, c in enumerate(counts) for k in range(c - 1)]
//	    spread = sum(gaps) / len(gaps) / ((N + 1) / 3)
//	    return diversity, spread
//
// (a score whose denominator would be 0, with no full batch or no pair of
// neighbours, is 0).
type Quality struct {
	// Diversity is the mean number of distinct shards in the full batches
	// [jB, (j+1)B) of S, divided by the most a batch can hold, min(B,
	// shards with samples). A batch of one shard scores 1/min(B, shards);
	// 1 needs every sample of a batch from another shard.
	Diversity float64
	// Spread is the mean distance |pos(x) - pos(y)| between file-order
	// neighbours x, y (samples k and k+1 of one shard), divided by
	// (N+1)/3, its expectation when S is a uniform random permutation.
	// 1 is as good as a full shuffle; file order scores about 3/N; a
	// window of W of S shards about W/S.
	Spread float64
	// Batches and Pairs are how many batches and neighbour pairs the
	// means are over.
	Batches, Pairs int
}

// MeasureOrder returns the Quality of order as an epoch over shards with
// the given counts, for batches of batch samples. order must hold every
// sample exactly once; an error (wrapping ErrInvalid) names the first
// position that does not.
func MeasureOrder(counts []int, order []Ref, batch int) (Quality, error) {
	if batch <= 0 {
		return Quality{}, fmt.Errorf("%w: quality: batch size %d is not positive", ErrInvalid, batch)
	}
	// first[s]: index of shard s's sample 0 among all samples in file order.
	first := make([]int, len(counts)+1)
	nonEmpty := 0
	for s, c := range counts {
		if c < 0 {
			return Quality{}, fmt.Errorf("%w: quality: shard %d has %d samples", ErrInvalid, s, c)
		}
		first[s+1] = first[s] + c
		if c > 0 {
			nonEmpty++
		}
	}
	n := first[len(counts)]
	if len(order) != n {
		return Quality{}, fmt.Errorf("%w: quality: order has %d samples, the counts %d", ErrInvalid, len(order), n)
	}
	pos := make([]int, n)
	for i := range pos {
		pos[i] = -1
	}
	seen := make([]int, len(counts)) // seen[s]: 1 + the last batch holding shard s
	var q Quality
	distinct := 0
	for i, r := range order {
		s := int(r.Shard)
		if s < 0 || s >= len(counts) || r.Sample < 0 || int(r.Sample) >= counts[s] {
			return Quality{}, fmt.Errorf("%w: quality: position %d holds shard %d sample %d, not in the dataset", ErrInvalid, i, r.Shard, r.Sample)
		}
		g := first[s] + int(r.Sample)
		if pos[g] >= 0 {
			return Quality{}, fmt.Errorf("%w: quality: position %d repeats shard %d sample %d of position %d", ErrInvalid, i, r.Shard, r.Sample, pos[g])
		}
		pos[g] = i
		if b := i / batch; b < n/batch && seen[s] != b+1 {
			seen[s] = b + 1
			distinct++
		}
	}
	if q.Batches = n / batch; q.Batches > 0 {
		q.Diversity = float64(distinct) / float64(q.Batches) / float64(min(batch, nonEmpty))
	}
	var gaps float64
	for s, c := range counts {
		for k := first[s]; k < first[s]+c-1; k++ {
			gaps += float64(abs(pos[k+1] - pos[k]))
			q.Pairs++
		}
	}
	if q.Pairs > 0 {
		q.Spread = gaps / float64(q.Pairs) / (float64(n+1) / 3)
	}
	return q, nil
}

// Measure returns the Quality of a plan whose every window is counted.
// It holds the whole order in memory: it is for datasets of a test's size.
func Measure(p *Plan, batch int) (Quality, error) {
	n, complete := p.Total()
	if !complete {
		return Quality{}, fmt.Errorf("%w: quality: the plan's counts are not all known", ErrInvalid)
	}
	counts := make([]int, p.Shards())
	for s := range counts {
		counts[s], _ = p.Count(s)
	}
	return MeasureOrder(counts, p.Slice(0, n), batch)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
