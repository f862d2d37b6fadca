package pipeline

import "math/bits"

// rng is SplitMix64 started from a key: (seed, epoch, position, op). It
// is defined here, not taken from math/rand, so that the draws never
// change with the Go version or the platform; python/stoker/pipeline.py
// has the same generator (a test checks the two agree).
type rng struct{ state uint64 }

const golden = 0x9e3779b97f4a7c15

// mix is SplitMix64's output function of z plus the golden increment.
func mix(z uint64) uint64 {
	z += golden
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newRNG starts the generator of one op of one sample.
func newRNG(seed, epoch, position, op uint64) rng {
	return rng{state: mix(mix(mix(mix(seed)^epoch)^position) ^ op)}
}

// next is the next 64 random bits.
func (r *rng) next() uint64 {
	r.state += golden
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float is uniform in [0, 1), from the top 53 bits.
func (r *rng) float() float64 { return float64(r.next()>>11) * 0x1p-53 }

// uniform is uniform in [a, b).
func (r *rng) uniform(a, b float64) float64 { return a + (b-a)*r.float() }

// intn is uniform in [0, n) for n > 0: the high word of next()·n (a bias
// of at most n/2^64).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}
