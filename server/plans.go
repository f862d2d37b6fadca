package server

import (
	"crypto/sha256"
	"encoding/binary"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/shuffle"
)

// planKey identifies a plan: the dataset's shards (objects and ETags) and
// the shuffle settings. Ranks of one job share one plan.
type planKey struct {
	dataset  [32]byte
	settings shuffle.Settings
}

// planCache keeps recently used plans; building one costs a pass over
// the dataset's shard counts, and its windows are filled as they are read.
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

func (c *planCache) get(ds *prefetch.Dataset, s shuffle.Settings) (*shuffle.Plan, error) {
	h := sha256.New()
	var n [8]byte
	for _, sh := range ds.Manifest.Shards {
		h.Write([]byte(sh.Object))
		h.Write([]byte{0})
		h.Write([]byte(sh.ETag))
		binary.LittleEndian.PutUint64(n[:], uint64(sh.Samples))
		h.Write(n[:])
	}
	k := planKey{settings: s}
	h.Sum(k.dataset[:0])
	if p, ok := c.plans.Get(k); ok {
		return p, nil
	}
	p, err := shuffle.NewPlan(ds.Manifest.Counts(), s)
	if err != nil {
		return nil, err
	}
	c.plans.Add(k, p)
	return p, nil
}
