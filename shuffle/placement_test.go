package shuffle

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Placement assigns each key of a list to a member: Owner applied to every
// key, which the property tests below compare across member sets.
type Placement []int

// Place returns the owner index of every key.
func Place(keys []string, members []Member) Placement {
	p := make(Placement, len(keys))
	for i, k := range keys {
		p[i] = Owner(k, members)
	}
	return p
}

// Counts returns how many keys each of n members owns.
func (p Placement) Counts(n int) []int {
	c := make([]int, n)
	for _, o := range p {
		if o >= 0 && o < n {
			c[o]++
		}
	}
	return c
}

func shardKeys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = fmt.Sprintf("s3://datasets/train/shard-%06d.tar\x00\"etag-%d\"", i, i*7919)
	}
	return k
}

func equalMembers(n int) []Member {
	m := make([]Member, n)
	for i := range m {
		m[i] = Member{Name: fmt.Sprintf("node-%d", i), Weight: 64 << 30}
	}
	return m
}

func TestPlacementBalanced(t *testing.T) {
	keys := shardKeys(20000)
	for _, n := range []int{2, 3, 4, 7} {
		c := Place(keys, equalMembers(n)).Counts(n)
		want := float64(len(keys)) / float64(n)
		for i, got := range c {
			if dev := math.Abs(float64(got)-want) / want; dev > 0.04 {
				t.Errorf("%d members: member %d owns %d keys, want %.0f ±4%% (off by %.1f%%)", n, i, got, want, dev*100)
			}
		}
	}
}

func TestPlacementWeighted(t *testing.T) {
	keys := shardKeys(30000)
	members := []Member{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 2}}
	c := Place(keys, members).Counts(len(members))
	for i, m := range members {
		want := float64(len(keys)) * m.Weight / 8
		if dev := math.Abs(float64(c[i])-want) / want; dev > 0.05 {
			t.Errorf("member %s (weight %v) owns %d keys, want %.0f ±5%%", m.Name, m.Weight, c[i], want)
		}
	}
}

func TestPlacementJoinMovesOnlyNewShare(t *testing.T) {
	keys := shardKeys(20000)
	for _, n := range []int{1, 2, 3, 5} {
		before := equalMembers(n)
		after := append(equalMembers(n), Member{Name: "joiner", Weight: 64 << 30})
		pb, pa := Place(keys, before), Place(keys, after)
		moved := 0
		for i := range keys {
			if pa[i] != pb[i] {
				moved++
				if pa[i] != n {
					t.Fatalf("%d→%d members: key %d moved from %d to %d, not to the new member", n, n+1, i, pb[i], pa[i])
				}
			}
		}
		want := float64(len(keys)) / float64(n+1)
		if dev := math.Abs(float64(moved)-want) / want; dev > 0.05 {
			t.Errorf("%d→%d members: %d keys moved, want about %.0f", n, n+1, moved, want)
		}
	}
}

func TestPlacementLeaveMovesOnlyItsShare(t *testing.T) {
	keys := shardKeys(10000)
	all := equalMembers(5)
	pb := Place(keys, all)
	for gone := range all {
		rest := append(append([]Member{}, all[:gone]...), all[gone+1:]...)
		pa := Place(keys, rest)
		for i := range keys {
			was := all[pb[i]].Name
			now := rest[pa[i]].Name
			if was != all[gone].Name && was != now {
				t.Fatalf("member %d left: key %d moved from %s to %s though its owner stayed", gone, i, was, now)
			}
		}
	}
}

func TestPlacementDeterministicAndOrderFree(t *testing.T) {
	keys := shardKeys(2000)
	members := []Member{{"a", 1}, {"b", 5}, {"c", 2}, {"d", 3}, {"e", 0}}
	ref := Place(keys, members)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		perm := append([]Member{}, members...)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		p := Place(keys, perm)
		for i := range keys {
			if perm[p[i]].Name != members[ref[i]].Name {
				t.Fatalf("key %d: owner %s in one order, %s in another", i, members[ref[i]].Name, perm[p[i]].Name)
			}
		}
	}
	// Fixed owners guard against an accidental change of the hash: nodes
	// of one cluster running different builds must still agree.
	golden := []int{3, 1, 2, 0, 3, 1, 3, 1, 2, 3, 2, 3}
	for i, k := range shardKeys(len(golden)) {
		if got := Owner(k, equalMembers(4)); got != golden[i] {
			t.Fatalf("key %d: owner %d, want %d (the placement hash changed)", i, got, golden[i])
		}
	}
	if Owner("x", nil) != -1 {
		t.Fatal("Owner with no members must be -1")
	}
}
