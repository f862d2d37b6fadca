package shuffle

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestPermIsBijection(t *testing.T) {
	for n := range uint64(600) {
		p := newPerm(n, n*7919)
		seen := make([]bool, n)
		for x := range n {
			y := p.at(x)
			if y >= n || seen[y] {
				t.Fatalf("n %d: at(%d) = %d, out of range or repeated", n, x, y)
			}
			seen[y] = true
			if p.inv(y) != x {
				t.Fatalf("n %d: inv(at(%d)) = %d", n, x, p.inv(y))
			}
		}
	}
	// Large domains, by sampling: at stays in range and inv undoes it.
	r := rand.New(rand.NewPCG(7, 7))
	for _, n := range []uint64{1 << 20, 1<<20 + 1, 1e9, 1 << 31, math.MaxUint32, 1 << 32} {
		p := newPerm(n, r.Uint64())
		for range 2000 {
			x := r.Uint64N(n)
			y := p.at(x)
			if y >= n || p.inv(y) != x {
				t.Fatalf("n %d: at(%d) = %d, inv back %d", n, x, y, p.inv(y))
			}
		}
	}
}

// Over many keys, every order of a few elements, and the images of three
// inputs of more elements, come out about equally often: a weak network
// (too few rounds, a poor round function, Feistel on 2-bit halves) fails
// this.
func TestPermIsUniform(t *testing.T) {
	// Chi-square over cells equally likely under a uniform permutation:
	// its mean per degree of freedom is 1, its sd sqrt(2/df).
	check := func(name string, n uint64, cells map[uint64]int, want float64, ncells int) {
		t.Helper()
		chi := 0.0
		for _, c := range cells {
			d := float64(c) - want
			chi += d * d / want
		}
		chi += float64(ncells-len(cells)) * want // cells never hit
		df := float64(ncells - 1)
		if limit := 1 + 5*math.Sqrt(2/df); chi/df > limit {
			t.Errorf("n %d: %s chi-square per degree of freedom %.2f over %.2f: not uniform", n, name, chi/df, limit)
		}
	}
	for _, n := range []uint64{2, 3, 4, 5, 6} {
		const keys = 60000
		orders := map[uint64]int{}
		for k := range uint64(keys) {
			p := newPerm(n, mix(k, n))
			code := uint64(0)
			for x := range n {
				code = code*8 + p.at(x)
			}
			orders[code]++
		}
		fact := 1
		for i := 2; i <= int(n); i++ {
			fact *= i
		}
		check("orders", n, orders, keys/float64(fact), fact)
	}
	for _, n := range []uint64{7, 12, 16, 17, 33} {
		ncells := int(n * (n - 1) * (n - 2))
		keys := 30 * ncells
		triples := map[uint64]int{}
		for k := range uint64(keys) {
			p := newPerm(n, mix(k, n))
			triples[(p.at(0)*n+p.at(1))*n+p.at(n-1)]++
		}
		check("triples", n, triples, 30, ncells)
	}
}

// Neighbouring inputs are not mapped to neighbouring outputs: the gap
// between at(x) and at(x+1) is spread like a random pair's.
func TestPermDecorrelatesNeighbours(t *testing.T) {
	const n = 10000
	p := newPerm(n, 12345)
	sum := 0.0
	for x := range uint64(n - 1) {
		d := int64(p.at(x+1)) - int64(p.at(x))
		sum += math.Abs(float64(d))
	}
	mean := sum / (n - 1) / ((n + 1) / 3.0) // 1 for a random permutation
	if mean < 0.95 || mean > 1.05 {
		t.Fatalf("mean neighbour gap is %.3f of a random permutation's", mean)
	}
}
