package prefetch

import (
	"context"
	"runtime"
	"testing"

	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// The ranks of a job stay close: a rank's stream does not start a step
// past the end of the window another rank's stream of the same plan is in
// (or two steps past it, if further), until that one moves to the next
// window, delivers its step or ends. Before pacing, a rank opened late
// stayed behind by as much as its reader's flow-control window and fetched
// again every shard the leader had read (TestLargerThanCache, epoch 1 at
// up to 1.38x the dataset).
func TestRanksPacedWithinAWindow(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 8, PerShard: 4, SampleSize: 100, Seed: 1}, 1<<20)
	tiers, shards := e.fresh(t, 1<<20)
	p := NewPrefetcher(PrefetchConfig{AheadBatches: 1}, shards, tiers)
	defer p.Close()
	plan, err := shuffle.NewPlan(e.counts(t), shuffle.Settings{Seed: 3, Window: 2}) // windows of 8 positions
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(rank int) *Stream {
		return p.Open(e.ds, plan, shuffle.Batching{WorldSize: 2, Rank: rank, BatchSize: 1}, 0) // steps of 2 positions
	}
	lead, lag := open(0), open(1)
	defer lead.Close() // lag is closed below
	// Another job reading the same plan alone: never waited for.
	other := p.Open(e.ds, plan, shuffle.Batching{WorldSize: 1, BatchSize: 4}, 0)
	defer other.Close()
	step := func(s *Stream, k int) {
		t.Helper()
		if _, _, _, ok, err := s.Step(ctx, k); err != nil || !ok {
			t.Fatalf("step %d: ok %v, %v", k, ok, err)
		}
		s.Advance(k)
	}
	// started runs lead's step k and returns a channel closed when it
	// returns, once the step waits (or returned).
	started := func(k int) chan struct{} {
		done := make(chan struct{})
		waits := p.paced.Load()
		go func() {
			defer close(done)
			if _, _, _, ok, err := lead.Step(ctx, k); err != nil || !ok {
				t.Errorf("step %d: ok %v, %v", k, ok, err)
			}
		}()
		for p.paced.Load() == waits {
			select {
			case <-done:
				return done
			default:
				runtime.Gosched()
			}
		}
		return done
	}
	returned := func(done chan struct{}) bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}

	// lag is at position 0, in window 0 [0, 8): lead starts its steps 0-3
	// (positions 0-7), not step 4 at position 8, while lag is at a
	// position p with both the window's end (8) and two steps past p
	// (p+4) at most 8: positions 1 and 3.
	for k := range 4 {
		step(lead, k)
	}
	done := started(4)
	for k := range 2 {
		if returned(done) {
			t.Fatalf("step 4 of rank 0 started at position 8 with rank 1 at step %d, in window 0", k)
		}
		step(lag, k) // positions 1, 3
	}
	if returned(done) {
		t.Fatal("step 4 of rank 0 started at position 8 with rank 1 at position 3")
	}
	step(lag, 2) // position 5: two steps past it is 9, so lead may start position 8
	<-done
	step(lag, 3)
	step(lag, 4) // position 9, window 1 [8, 16): lead may start steps up to position 15
	lead.Advance(4)
	for k := 5; k < 8; k++ {
		step(lead, k)
	}

	// lag delivers its step (its reader may be waiting on rank 0): lead is
	// not held back by it.
	done = started(8)
	if returned(done) {
		t.Fatal("step 8 of rank 0 started at position 16 with rank 1 in window 1")
	}
	lag.Deliver()
	<-done
	lead.Advance(8)

	// lag reads again (its next step) and lead waits for it; lag ends its
	// epoch (closes): lead goes on.
	if _, _, _, ok, err := lag.Step(ctx, 5); err != nil || !ok {
		t.Fatal(ok, err)
	}
	done = started(9)
	if returned(done) {
		t.Fatal("step 9 of rank 0 started past a reading rank 1")
	}
	lag.Close()
	<-done
}
