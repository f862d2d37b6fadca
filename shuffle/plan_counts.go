package shuffle

import (
	"fmt"
	"math"
)

// SetCounts gives the sample counts of window k's shards, in the order
// WindowShards(k) lists them. Counting a window again with the same counts
// does nothing; with other counts it is an error, and the plan keeps the
// first (for a plan from NewPlan, the counts it was built with). Counts
// are checked like NewPlan's: each in [0, MaxShardSamples], the window's
// sum at most MaxWindowSamples, the epoch's at most the largest int.
// Errors wrap ErrInvalid. Safe to call concurrently with every method.
func (p *Plan) SetCounts(k int, counts []int) error {
	if k < 0 || k >= p.windows {
		return fmt.Errorf("%w: shuffle plan: window %d is outside [0, %d)", ErrInvalid, k, p.windows)
	}
	lo, hi := p.windowRanks(k)
	if len(counts) != hi-lo {
		return fmt.Errorf("%w: shuffle plan: window %d has %d shards, got %d counts", ErrInvalid, k, hi-lo, len(counts))
	}
	var sum uint64
	for i, c := range counts {
		if c < 0 || c > MaxShardSamples {
			return fmt.Errorf("%w: shuffle plan: shard %d (window %d) has %d samples, want 0 to %d", ErrInvalid, p.ShardAt(lo+i), k, c, MaxShardSamples)
		}
		sum += uint64(c)
	}
	if sum > MaxWindowSamples {
		return fmt.Errorf("%w: shuffle plan: window %d holds %d samples, more than %d; use a smaller window", ErrInvalid, k, sum, uint64(MaxWindowSamples))
	}
	if p.src != nil {
		for i, c := range counts {
			if s := p.ShardAt(lo + i); p.src[s] != c {
				return mismatch(k, s, p.src[s], c)
			}
		}
		return nil
	}

	p.mu.Lock()
	if p.isCounted(k) {
		for i, c := range counts {
			if was := p.count(lo + i); was != c {
				p.mu.Unlock()
				return mismatch(k, p.ShardAt(lo+i), was, c)
			}
		}
		p.mu.Unlock()
		return nil
	}
	if uint64(p.countedSamples.Load())+sum > math.MaxInt {
		p.mu.Unlock()
		return fmt.Errorf("%w: shuffle plan: window %d brings the epoch past %d samples", ErrInvalid, k, math.MaxInt)
	}
	var run uint32
	for i, c := range counts {
		run += uint32(c)
		p.cum[lo+i] = run
	}
	p.counted[k/64].Or(1 << (k % 64))
	p.countedShards.Add(int64(hi - lo))
	p.countedSamples.Add(int64(sum))
	p.advance()
	p.mu.Unlock()
	return nil
}

func mismatch(k, shard, was, got int) error {
	return fmt.Errorf("%w: shuffle plan: window %d: shard %d was counted with %d samples, now %d", ErrInvalid, k, shard, was, got)
}

// Counted reports whether window k's counts are known; false for a k
// outside [0, Windows()).
func (p *Plan) Counted(k int) bool {
	if k < 0 || k >= p.windows {
		return false
	}
	return p.src != nil || p.isCounted(k)
}

// isCounted reports whether window k's cum is written.
func (p *Plan) isCounted(k int) bool {
	return p.counted[k/64].Load()&(1<<(k%64)) != 0
}

// advance extends the filled prefix over the counted windows after it.
// The caller holds mu.
func (p *Plan) advance() {
	f := int(p.filled.Load())
	for f < p.windows && p.isCounted(f) {
		_, hi := p.windowRanks(f)
		p.start[f+1] = p.start[f] + int64(p.cum[hi-1])
		f++
	}
	p.filled.Store(int64(f))
}

// fillAt fills the windows of a plan from NewPlan up to the one holding
// position i < total, and returns the new filled prefix.
func (p *Plan) fillAt(i int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for f := int(p.filled.Load()); p.start[f] <= int64(i); f = int(p.filled.Load()) {
		p.fillWindow(f)
		p.advance()
	}
	return int(p.filled.Load())
}

// fillThrough fills the windows of a plan from NewPlan up to window k.
func (p *Plan) fillThrough(k int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for f := int(p.filled.Load()); f <= k; f = int(p.filled.Load()) {
		p.fillWindow(f)
		p.advance()
	}
}

// fillWindow writes window k's cum from the counts of a plan from NewPlan
// (checked when it was built). The caller holds mu.
func (p *Plan) fillWindow(k int) {
	lo, hi := p.windowRanks(k)
	var run uint32
	for r := lo; r < hi; r++ {
		run += uint32(p.src[p.ShardAt(r)])
		p.cum[r] = run
	}
	p.counted[k/64].Or(1 << (k % 64))
}
