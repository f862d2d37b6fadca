package shuffle

import (
	"hash/fnv"
	"math"
)

// Member is a candidate owner of shards: a name every node agrees on and a
// weight (a node's cache capacity, in any unit). A weight of zero or less
// counts as 1, so a member that reports no capacity still owns its share.
type Member struct {
	Name   string
	Weight float64
}

// Owner returns the index in members of the member that owns key, by
// weighted rendezvous (highest random weight) hashing: every member gets a
// score from (key, name) and its weight, and the highest score wins. The
// result depends only on key and the set of (name, weight) pairs, not on
// their order, so every node that sees the same members computes the same
// owner. Adding a member moves to it only the keys it now wins (about
// weight/total of them); removing one moves only the keys it owned.
// Owner returns -1 when members is empty.
func Owner(key string, members []Member) int {
	kh := strhash(key)
	best, bestScore := -1, 0.0
	for i, m := range members {
		s := score(kh, m)
		if best < 0 || s > bestScore || (s == bestScore && m.Name < members[best].Name) {
			best, bestScore = i, s
		}
	}
	return best
}

// score is the member's weighted score for a key hash: w / -ln(u) with u
// uniform in (0, 1) drawn from (key, name). Its maximum over members picks
// member i with probability w_i / sum(w) (Schindelhauer and Schomaker's
// logarithmic method).
func score(kh uint64, m Member) float64 {
	w := m.Weight
	if !(w > 0) {
		w = 1
	}
	h := mix(kh, strhash(m.Name))
	u := (float64(h>>11) + 0.5) / (1 << 53) // in (0, 1), never 0 or 1
	return w / -math.Log(u)
}

func strhash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}
