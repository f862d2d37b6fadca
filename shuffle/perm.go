package shuffle

import "math/bits"

// rounds is the number of Feistel rounds of a perm (even: see encrypt). Four rounds with a
// pseudorandom round function make a strong pseudorandom permutation
// (Luby and Rackoff), but that bound is weak when a half is a few bits
// wide, as it is for small windows; six rounds push the distinguishing
// advantage down further (Patarin) for a few nanoseconds more per call.
// Changing rounds changes every order: bump PlanVersion.
const rounds = 6

// smallPerm is the largest n a perm shuffles with Fisher-Yates instead of
// the Feistel network. On a domain of a few bits a six-round network is
// far from uniform after cycle walking (TestPermIsUniform, with the
// network for every n): over 60k keys the 120 orders of 5 elements come
// out with a chi-square of 30 per degree of freedom, triples of 7
// elements 7.7, of 16 elements 1.21 (5 standard deviations over 1); from
// 17 elements (5 bits) on they are within 2 standard deviations. Sixteen
// rounds would fix small domains too, at more than twice the cost of
// every call; a shuffle of 16 costs about as much as the network.
const smallPerm = 16

// perm is a keyed bijection on [0, n): a Feistel network on the b bits
// that cover n (b = bits.Len(n-1)), with cycle walking (values that land
// outside [0, n) are encrypted again until they land inside). The two
// halves are of ceil(b/2) and floor(b/2) bits and trade places each
// round, so the domain is 2^b < 2n and a call walks fewer than 2 times on
// average (a balanced network on an even number of bits would need a
// domain of up to 4n). Neither the permutation nor its inverse is
// materialized: at and inv are O(1) and allocation-free. A perm is a small
// value; copy it. Domains of at most smallPerm elements are shuffled by
// Fisher-Yates on each call instead.
//
// n is at most 2^32 (the planner bounds both the number of shards and the
// samples of a window below it), so a half is at most 16 bits.
type perm struct {
	n     uint64
	lo    uint   // bits of the low half, floor(b/2); the high half has hi
	hmask uint64 // (1 << ceil(b/2)) - 1
	lmask uint64 // (1 << lo) - 1
	keys  [rounds]uint64
}

// newPerm returns the permutation of [0, n) chosen by key.
func newPerm(n, key uint64) perm {
	p := perm{n: n}
	if n <= 1 {
		return p
	}
	b := uint(bits.Len64(n - 1))
	p.lo = b / 2
	p.hmask, p.lmask = 1<<(b-p.lo)-1, 1<<p.lo-1
	// The round keys differ from each other above bit 16, so the rounds'
	// functions fmix(x ^ keys[r]) read disjoint parts of fmix's domain.
	for r := range p.keys {
		p.keys[r] = key ^ uint64(r+1)*0x9e3779b97f4a7c15
	}
	return p
}

// at returns the image of x, which must be in [0, n).
func (p *perm) at(x uint64) uint64 {
	if p.n <= smallPerm {
		if p.n <= 1 {
			return x
		}
		t := p.small()
		return uint64(t[x])
	}
	for {
		x = p.encrypt(x)
		if x < p.n {
			return x
		}
	}
}

// inv returns the x with at(x) == y; y must be in [0, n).
func (p *perm) inv(y uint64) uint64 {
	if p.n <= smallPerm {
		if p.n <= 1 {
			return y
		}
		t := p.small()
		for x, v := range t[:p.n] {
			if uint64(v) == y {
				return uint64(x)
			}
		}
		return y // not reached for y < n
	}
	for {
		y = p.decrypt(y)
		if y < p.n {
			return y
		}
	}
}

// small returns the permutation of a domain of at most smallPerm
// elements as a table: a Fisher-Yates shuffle driven by a SplitMix64
// stream from the key. A draw in [0, i] is the high word of a 64-bit draw
// times i+1, biased by less than 2^-59.
func (p *perm) small() [smallPerm]uint8 {
	var t [smallPerm]uint8
	for i := range t {
		t[i] = uint8(i)
	}
	s := p.keys[0]
	for i := p.n - 1; i > 0; i-- {
		s += 0x9e3779b97f4a7c15
		j, _ := bits.Mul64(fmix(s), i+1)
		t[i], t[j] = t[j], t[i]
	}
	return t
}

// encrypt is one pass of the network over the domain [0, 2^b). A round
// maps (l, r) to (r, l ^ F(r)); the halves trade widths each round, so
// rounds go in pairs and the widths are back in place after each pair.
func (p *perm) encrypt(x uint64) uint64 {
	l, r := x>>p.lo, x&p.lmask // l: high width, r: low width
	for i := 0; i < rounds; i += 2 {
		l, r = r, (l^fmix(r^p.keys[i]))&p.hmask   // l: low, r: high
		l, r = r, (l^fmix(r^p.keys[i+1]))&p.lmask // l: high, r: low
	}
	return l<<p.lo | r
}

func (p *perm) decrypt(y uint64) uint64 {
	l, r := y>>p.lo, y&p.lmask
	for i := rounds - 1; i > 0; i -= 2 {
		l, r = (r^fmix(l^p.keys[i]))&p.lmask, l   // l: low, r: high
		l, r = (r^fmix(l^p.keys[i-1]))&p.hmask, l // l: high, r: low
	}
	return l<<p.lo | r
}

// mix is a SplitMix64-style hash of two words.
func mix(a, b uint64) uint64 {
	return fmix(a + 0x9e3779b97f4a7c15*(b+1))
}

// fmix is the SplitMix64 finaliser: every input bit flips each output bit
// with probability close to 1/2.
func fmix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
