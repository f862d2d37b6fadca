package server

import (
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/shuffle"
)

// planKey identifies a plan: the dataset's objects and versions (its ID)
// and the shuffle settings. Ranks of one job share one plan.
type planKey struct {
	dataset  string
	settings shuffle.Settings
}

// planCache keeps recently used plans, so the ranks of a job share one
// (and the windows one of them counts).
type planCache struct {
	plans *lru.Cache[planKey, *shuffle.Plan] // safe for concurrent use
}

func newPlanCache(n int) *planCache {
	c, err := lru.New[planKey, *shuffle.Plan](n)
	if err != nil {
		panic(err) // only for n <= 0
	}
	return &planCache{plans: c}
}

// get returns the plan of ds with settings s; the windows whose shards ds
// has counted are counted in it, the others are counted as streams reach
// them.
func (c *planCache) get(ds *dataset.Dataset, s shuffle.Settings) (*shuffle.Plan, error) {
	k := planKey{dataset: ds.ID, settings: s}
	if p, ok := c.plans.Get(k); ok {
		return p, nil
	}
	p, err := newPlan(ds, s)
	if err != nil {
		return nil, err
	}
	c.plans.Add(k, p)
	return p, nil
}

// newPlan makes ds's plan with settings s.
func newPlan(ds *dataset.Dataset, s shuffle.Settings) (*shuffle.Plan, error) {
	n := len(ds.Manifest.Shards)
	if ds.Counted() {
		counts := make([]int, n)
		for i := range counts {
			counts[i], _ = ds.Count(i)
		}
		return shuffle.NewPlan(counts, s)
	}
	p, err := shuffle.NewLazyPlan(n, s)
	if err != nil {
		return nil, err
	}
	var shards []int
	for k := range p.Windows() {
		shards = p.WindowShards(k, shards[:0])
		counts := make([]int, len(shards))
		known := true
		for j, i := range shards {
			if counts[j], known = ds.Count(i); !known {
				break
			}
		}
		if known {
			if err := p.SetCounts(k, counts); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}
