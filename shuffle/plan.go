package shuffle

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Settings are the inputs of an epoch's order besides the manifest.
type Settings struct {
	// Seed of the job; the same seed gives the same order on every run.
	Seed uint64
	// Epoch number; each epoch has its own order.
	Epoch uint64
	// Window is the number of consecutive (permuted) shards whose samples
	// are shuffled together. 0, or at least the number of shards, shuffles
	// the whole epoch.
	Window int
	// NoShuffle keeps file order: shards in manifest order, samples in
	// shard order.
	NoShuffle bool
}

// Ref names one sample: its shard (index in the manifest) and its index
// inside that shard.
type Ref struct {
	Shard  int32
	Sample int32
}

// Plan is the global sample sequence S of one epoch. It depends only on the
// shard sample counts and the Settings, never on the world size.
// A Plan is immutable; it is safe for concurrent use.
type Plan struct {
	seq   []Ref
	first []int // first[s]: first position of shard s in seq, -1 if none
	last  []int // last[s]: last position of shard s in seq, -1 if none
}

// NewPlan builds the epoch's sequence for shards with the given sample counts.
func NewPlan(counts []int, s Settings) *Plan {
	total := 0
	for _, c := range counts {
		total += c
	}
	order := make([]int, len(counts))
	for i := range order {
		order[i] = i
	}
	if !s.NoShuffle {
		permute(rng(s.Seed, s.Epoch, 0), len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	w := s.Window
	if w <= 0 || w > len(order) {
		w = len(order)
	}
	seq := make([]Ref, 0, total)
	for lo := 0; lo < len(order); lo += w {
		hi := min(lo+w, len(order))
		start := len(seq)
		for _, sh := range order[lo:hi] {
			for k := range counts[sh] {
				seq = append(seq, Ref{Shard: int32(sh), Sample: int32(k)})
			}
		}
		if !s.NoShuffle {
			win := seq[start:]
			permute(rng(s.Seed, s.Epoch, uint64(lo/w)+1), len(win), func(i, j int) { win[i], win[j] = win[j], win[i] })
		}
	}
	p := &Plan{seq: seq, first: make([]int, len(counts)), last: make([]int, len(counts))}
	for i := range counts {
		p.first[i], p.last[i] = -1, -1
	}
	for i, r := range seq {
		if p.first[r.Shard] < 0 {
			p.first[r.Shard] = i
		}
		p.last[r.Shard] = i
	}
	return p
}

// Len is the number of samples in the epoch.
func (p *Plan) Len() int { return len(p.seq) }

// At returns the sample at position i of the sequence.
func (p *Plan) At(i int) Ref { return p.seq[i] }

// Slice returns positions [lo, hi) of the sequence. The caller must not
// modify the result.
func (p *Plan) Slice(lo, hi int) []Ref { return p.seq[lo:hi:hi] }

// NextUse returns the first position at or after pos where shard is needed,
// or -1 if the epoch needs it no more. Samples of a shard are spread over its
// window, so a shard whose window is in progress is needed at pos itself.
func (p *Plan) NextUse(shard, pos int) int {
	if shard < 0 || shard >= len(p.first) || p.last[shard] < pos || p.first[shard] < 0 {
		return -1
	}
	return max(p.first[shard], pos)
}

// rng returns a generator for one (seed, epoch, stream) triple. PCG is
// specified, so the order is stable across Go releases.
func rng(seed, epoch, stream uint64) *rand.PCG {
	return rand.NewPCG(mix(seed^0x5374_6f6b_6572_0001, epoch), mix(stream, seed+epoch))
}

// mix is a SplitMix64-style finaliser of two words.
func mix(a, b uint64) uint64 {
	z := a + 0x9e3779b97f4a7c15*(b+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// permute is a Fisher-Yates shuffle with a bounded draw written here, not
// taken from math/rand, whose algorithms may change between releases.
func permute(r *rand.PCG, n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, int(bounded(r, uint64(i+1))))
	}
}

// bounded returns a uniform value in [0, n) (Lemire's multiply-shift with
// rejection).
func bounded(r *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// Batching is how one rank reads a sequence: its place in the world and
// the per-rank batch size.
type Batching struct {
	Rank      int
	WorldSize int
	BatchSize int
	// DropLast stops every rank after the last full step.
	DropLast bool
}

// ErrInvalid is wrapped by every error about bad batching arguments.
var ErrInvalid = errors.New("invalid argument")

// Validate checks the batching arguments and says which one is wrong.
func (b Batching) Validate() error {
	switch {
	case b.BatchSize <= 0:
		return fmt.Errorf("%w: batch_size must be positive, got %d", ErrInvalid, b.BatchSize)
	case b.WorldSize <= 0:
		return fmt.Errorf("%w: world_size must be positive, got %d", ErrInvalid, b.WorldSize)
	case b.Rank < 0 || b.Rank >= b.WorldSize:
		return fmt.Errorf("%w: rank %d is outside world_size %d", ErrInvalid, b.Rank, b.WorldSize)
	}
	return nil
}

// StepSize is the number of samples one step covers across all ranks.
func (b Batching) StepSize() int { return b.WorldSize * b.BatchSize }

// Steps is the number of steps from position start to the end of a
// sequence of total samples. A step is a batch for every rank; without
// DropLast the last step may be short and leave some ranks empty.
func (b Batching) Steps(total, start int) int {
	rest := total - start
	if rest <= 0 {
		return 0
	}
	if b.DropLast {
		return rest / b.StepSize()
	}
	return (rest + b.StepSize() - 1) / b.StepSize()
}

// Batch returns the positions [lo, hi) of this rank's batch at step k
// counted from start, clipped to total. The batch may be empty (lo == hi)
// at a short last step.
func (b Batching) Batch(total, start, k int) (lo, hi int) {
	lo = min(start+k*b.StepSize()+b.Rank*b.BatchSize, total)
	hi = min(lo+b.BatchSize, total)
	return lo, hi
}

// After is the cursor position after step k counted from start: where the
// next step begins, for every rank.
func (b Batching) After(total, start, k int) int {
	return min(start+(k+1)*b.StepSize(), total)
}

// Cursor is a point in an epoch: the position in the epoch's sequence S
// that the next step starts at. Resuming from a cursor yields exactly the
// rest of the sequence, whatever the world size.
type Cursor struct {
	Epoch    uint64 `json:"epoch"`
	Position int    `json:"position"`
}
