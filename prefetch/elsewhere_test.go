package prefetch

import (
	"context"
	"testing"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// A stream told that some shards are worked on elsewhere fetches none of
// them ahead; Meta gives their samples' keys and field names without
// reading a byte of them, and Sample still reads any sample on demand.
func TestElsewhereShardsNotFetched(t *testing.T) {
	syn := wds.Synthetic{Shards: 6, PerShard: 5, SampleSize: 2000, Seed: 1}
	e := newPrefetchEnv(t, syn, 1<<20)
	tiers, shards := e.fresh(t, 1<<20) // empty: nothing cached by indexing
	p := NewPrefetcher(PrefetchConfig{AheadBatches: 6, AheadBytes: 1 << 30}, shards, tiers)
	plan, err := shuffle.NewPlan(e.counts(t), shuffle.Settings{Seed: 3, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Open(e.ds, plan, shuffle.Batching{WorldSize: 1, BatchSize: 5}, 0)
	defer s.Close()
	elsewhere := func(i int) bool { return i%2 == 1 }
	s.SetElsewhere(elsewhere)
	s.Advance(0)
	shards.Wait()
	for i := range syn.Shards {
		if got := tiers.Contains(e.ds.Key(i)) != cache.TierNone; got == elsewhere(i) {
			t.Errorf("shard %d (elsewhere: %v) fetched ahead: %v", i, elsewhere(i), got)
		}
	}
	fetched := shards.Fetches()
	ctx := context.Background()
	for pos := range 30 {
		ref := plan.At(pos)
		if !elsewhere(int(ref.Shard)) {
			continue
		}
		m, err := s.Meta(ctx, pos)
		if err != nil {
			t.Fatal(err)
		}
		if shards.Fetches() != fetched {
			t.Fatalf("position %d: Meta fetched its shard", pos)
		}
		d, err := s.Sample(ctx, pos)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Meta || d.Meta || m.Key != d.Key || m.Ref != d.Ref || len(m.Fields) != len(d.Fields) || len(d.Fields) == 0 {
			t.Fatalf("position %d: Meta %q %v (%d fields), Sample %q %v (%d fields)", pos, m.Key, m.Ref, len(m.Fields), d.Key, d.Ref, len(d.Fields))
		}
		for f := range m.Fields {
			if m.Fields[f].Name != d.Fields[f].Name || m.Fields[f].Data != nil || len(d.Fields[f].Data) == 0 {
				t.Fatalf("position %d field %d: Meta %q (%d bytes), Sample %q (%d bytes)", pos, f, m.Fields[f].Name, len(m.Fields[f].Data), d.Fields[f].Name, len(d.Fields[f].Data))
			}
		}
		s.EndStep()
		if shards.Fetches() == fetched {
			t.Fatalf("position %d: Sample of a shard elsewhere fetched nothing", pos)
		}
		break
	}
}
