package shuffle

import "math"

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
// exact answer searches: it walks positions forward from pos and maps the
// shard's samples to their positions, one step of each in turn, and stops
// when either finds the answer. That costs at most twice the smaller of
// the shard's sample count and the distance to the answer; about 2W steps
// for a shard of a window of W like shards.
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
