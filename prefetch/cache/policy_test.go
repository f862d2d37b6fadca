package cache

import (
	"slices"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// mapOracle gives each key's next use; keys not in the map are not needed.
type mapOracle map[storage.Key]int64

func (m mapOracle) NextUse(key storage.Key) int64 {
	if n, ok := m[key]; ok {
		return n
	}
	return -1
}

func TestCachePolicyPick(t *testing.T) {
	type ent struct {
		name    string
		size    int64
		lastUse uint64
		next    int64 // -1: not needed
		pinned  bool
	}
	// a is the least recently used, d the most.
	four := []ent{
		{"a", 10, 1, 50, false},
		{"b", 10, 2, -1, false},
		{"c", 10, 3, 200, false},
		{"d", 10, 4, -1, false},
	}
	for _, tc := range []struct {
		name    string
		policy  Policy
		oracle  bool
		ents    []ent
		need    int64
		newNext int64
		want    []string // nil: refused
	}{
		{"lru takes least recent", PolicyLRU, true, four, 15, 0, []string{"a", "b"}},
		{"plan without oracle is lru", PolicyPlan, false, four, 15, 0, []string{"a", "b"}},
		{"plan takes unneeded first, lru among them", PolicyPlan, true, four, 15, 0, []string{"b", "d"}},
		{"plan then farthest next use", PolicyPlan, true, four, 25, 0, []string{"b", "d", "c"}},
		{"plan evicts an entry needed later than the new one", PolicyPlan, true, four, 25, 100, []string{"b", "d", "c"}},
		{"plan bypasses rather than evict one needed sooner", PolicyPlan, true, four, 35, 100, nil},
		{"plan evicts all when the new one is needed soonest", PolicyPlan, true, four, 35, 40, []string{"b", "d", "c", "a"}},
		{"plan evicts when the new entry is needed no later", PolicyPlan, true, four, 25, 200, []string{"b", "d", "c"}},
		{"plan: an unneeded new entry replaces only unneeded ones", PolicyPlan, true, four, 15, -1, []string{"b", "d"}},
		{"plan: an unneeded new entry does not evict needed ones", PolicyPlan, true, four, 25, -1, nil},
		{"pinned entries are skipped", PolicyLRU, true, []ent{
			{"a", 10, 1, -1, true}, {"b", 10, 2, -1, false}, {"c", 10, 3, -1, false},
		}, 15, 0, []string{"b", "c"}},
		{"not enough unpinned room", PolicyLRU, true, []ent{
			{"a", 10, 1, -1, true}, {"b", 10, 2, -1, false},
		}, 15, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex(tc.policy, 1000)
			o := mapOracle{}
			names := map[storage.Key]string{}
			for _, e := range tc.ents {
				key := storage.Key{Object: e.name}
				names[key] = e.name
				x.entries[key] = &entry{key: key, size: e.size, lastUse: e.lastUse, pins: map[bool]int{true: 1}[e.pinned]}
				if e.next >= 0 {
					o[key] = e.next
				}
			}
			var oracle Oracle
			if tc.oracle {
				oracle = o
			}
			victims, ok := x.pick(tc.need, oracle, tc.newNext)
			var got []string
			for _, v := range victims {
				got = append(got, names[v.key])
			}
			if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
				t.Errorf("pick = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

// TestCachePlanBypass checks PolicyPlan through the Cache: unneeded entries
// go first, then the farthest; an entry needed later than everything it
// would displace is not admitted, and counted.
func TestCachePlanBypass(t *testing.T) {
	const kib = 1 << 10
	c, _ := openTestCache(t, Config{MemoryBytes: 3 * kib, Policy: PolicyPlan})
	k := make([]storage.Key, 7)
	for i := range k {
		k[i] = testKey(i)
	}
	c.SetOracle(mapOracle{k[0]: 5, k[1]: 10, k[3]: 20, k[4]: 30, k[5]: 7})
	put := func(i int) { mustPut(t, c, k[i], testData(k[i], kib)) }
	in := func(want ...int) {
		t.Helper()
		var got []int
		for i := range k {
			if c.Contains(k[i]) == TierMemory {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("memory holds %v, want %v", got, want)
		}
	}
	put(0)
	put(1)
	put(2)
	in(0, 1, 2)
	put(3) // k2 is needed by no plan
	in(0, 1, 3)
	put(4) // needed at 30, later than all of 5, 10, 20: bypass
	in(0, 1, 3)
	put(5) // needed at 7: evicts k3 (20)
	in(0, 1, 5)
	c.SetOracle(nil) // plain LRU again
	put(6)
	in(1, 5, 6)
	m := c.Metrics()
	if m.Memory.Bypasses != 1 || m.Memory.Evictions != 3 {
		t.Errorf("bypasses %d, evictions %d; want 1, 3", m.Memory.Bypasses, m.Memory.Evictions)
	}
}

// planOracle answers NextUse from epoch plans, as a prefetcher with one
// stream would: from the stream's position in its epoch, and in the next
// epoch's plan for shards this epoch needs no more.
type planOracle struct {
	plans []*shuffle.Plan
	shard map[storage.Key]int
	epoch int
	pos   int // the next sample the stream reads
}

func (o *planOracle) NextUse(key storage.Key) int64 {
	s, ok := o.shard[key]
	if !ok {
		return -1
	}
	p := o.plans[o.epoch]
	if n := p.NextUse(s, o.pos); n >= 0 {
		return int64(n - o.pos)
	}
	if o.epoch+1 < len(o.plans) {
		if n := o.plans[o.epoch+1].NextUse(s, 0); n >= 0 {
			return int64(p.Len() - o.pos + n)
		}
	}
	return -1
}

// access is one read of the replayed sequence: the shard of sample pos of
// an epoch.
type access struct{ epoch, pos, shard int }

// lruHits counts the hits of a textbook LRU cache of capacity entries.
func lruHits(seq []access, capacity int) int {
	var order []int // least recent first
	hits := 0
	for _, a := range seq {
		if i := slices.Index(order, a.shard); i >= 0 {
			hits++
			order = slices.Delete(order, i, i+1)
		} else if len(order) == capacity {
			order = order[1:]
		}
		order = append(order, a.shard)
	}
	return hits
}

// optHits counts the hits of Belady's optimal cache with bypass, which
// knows the whole sequence: no policy can do better.
func optHits(seq []access, capacity int) int {
	const never = 1 << 62
	next := make([]int, len(seq)) // next[i]: next index reading seq[i]'s shard
	seen := map[int]int{}
	for i := len(seq) - 1; i >= 0; i-- {
		next[i] = never
		if j, ok := seen[seq[i].shard]; ok {
			next[i] = j
		}
		seen[seq[i].shard] = i
	}
	cached := map[int]int{} // shard -> index of its next read
	hits := 0
	for i, a := range seq {
		if _, ok := cached[a.shard]; ok {
			hits++
			cached[a.shard] = next[i]
			continue
		}
		if len(cached) < capacity {
			cached[a.shard] = next[i]
			continue
		}
		far, farNext := -1, -1
		for s, n := range cached {
			if n > farNext || (n == farNext && s < far) {
				far, farNext = s, n
			}
		}
		if farNext > next[i] {
			delete(cached, far)
			cached[a.shard] = next[i]
		}
	}
	return hits
}

// TestCachePlanBeatsLRU replays the reads of three epochs of a dataset a
// little larger than the memory tier against the real Cache, once with
// PolicyPlan and an Oracle built from the plans, once with PolicyLRU. On
// every miss the shard is Put, as a reader that fetched it would.
//
// The dataset is 40 shards of 1 KiB with 10 samples each; the memory tier
// holds 28 of them (70%); there is no disk tier. Each position of each
// epoch's plan is one Get of its shard.
func TestCachePlanBeatsLRU(t *testing.T) {
	const shards, samples, shardSize, epochs, fit = 40, 10, 1 << 10, 3, 28
	counts := make([]int, shards)
	keys := make([]storage.Key, shards)
	shardOf := map[storage.Key]int{}
	for i := range shards {
		counts[i] = samples
		keys[i] = testKey(i)
		shardOf[keys[i]] = i
	}
	for _, tc := range []struct {
		name     string
		settings shuffle.Settings
	}{
		// Shards permuted, samples shuffled within windows of 8 shards.
		{"window 8", shuffle.Settings{Seed: 2024, Window: 8}},
		// Every epoch reads shard 0 to 39 in order: the cyclic pattern on
		// which LRU keeps nothing from one epoch to the next.
		{"no shuffle", shuffle.Settings{Seed: 2024, NoShuffle: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plans := make([]*shuffle.Plan, epochs)
			var seq []access
			for e := range plans {
				s := tc.settings
				s.Epoch = uint64(e)
				var err error
				if plans[e], err = shuffle.NewPlan(counts, s); err != nil {
					t.Fatal(err)
				}
				for pos := range plans[e].Len() {
					seq = append(seq, access{epoch: e, pos: pos, shard: int(plans[e].At(pos).Shard)})
				}
			}

			replay := func(p Policy) (hits int) {
				c, _ := openTestCache(t, Config{MemoryBytes: fit * shardSize, Policy: p})
				o := &planOracle{plans: plans, shard: shardOf}
				c.SetOracle(o)
				for _, a := range seq {
					// Sample a.pos is being read: "now" is the one after it.
					o.epoch, o.pos = a.epoch, a.pos+1
					key := keys[a.shard]
					if _, _, ok := c.Get(key); ok {
						hits++
						continue
					}
					mustPut(t, c, key, testData(key, shardSize))
				}
				m := c.Metrics()
				if m.Memory.Hits != int64(hits) || m.Misses != int64(len(seq)-hits) {
					t.Errorf("%v: metrics count %d hits, %d misses; the replay saw %d, %d",
						p, m.Memory.Hits, m.Misses, hits, len(seq)-hits)
				}
				t.Logf("%v: %+v", p, m.Memory)
				return hits
			}
			plan, lru := replay(PolicyPlan), replay(PolicyLRU)
			refLRU, opt := lruHits(seq, fit), optHits(seq, fit)
			t.Logf("%d reads of %d shards, room for %d: hits plan %d (misses %d), lru %d (misses %d), optimal %d (misses %d)",
				len(seq), shards, fit, plan, len(seq)-plan, lru, len(seq)-lru, opt, len(seq)-opt)

			if lru != refLRU {
				t.Errorf("PolicyLRU hits %d, a textbook LRU %d", lru, refLRU)
			}
			if plan <= lru {
				t.Errorf("PolicyPlan hits %d, not more than PolicyLRU's %d", plan, lru)
			}
			if plan > opt {
				t.Errorf("PolicyPlan hits %d, more than the optimum %d: the replay is wrong", plan, opt)
			}
			// Without shuffle the plan's NextUse is exact, and Belady with
			// bypass is optimal.
			if tc.settings.NoShuffle && plan != opt {
				t.Errorf("no shuffle: PolicyPlan hits %d, the optimum %d", plan, opt)
			}
			// A reader takes a shard's samples in turn: the hits that only
			// need the shard to stay cached while its window is read are
			// the same for any policy. LRU gets almost nothing else.
			withinWindow := epochs * shards * (samples - 1)
			t.Logf("hits beyond re-reads within a window: plan %d, lru %d, optimal %d",
				plan-withinWindow, lru-withinWindow, opt-withinWindow)
			if tc.settings.NoShuffle && lru != withinWindow {
				t.Errorf("no shuffle: LRU hits %d; want exactly the %d re-reads within a shard (LRU thrashes)", lru, withinWindow)
			}
		})
	}
}
