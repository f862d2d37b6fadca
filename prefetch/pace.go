package prefetch

import "context"

// Pacing the ranks of a job.
//
// The ranks of a data-parallel job read one plan, each its own batch of
// every step, so they read the same shuffle window at about the same time:
// a whole shard is fetched once and held for every rank (heldShards), and
// the memory tier keeps what the slowest rank still needs (the oracle).
// That holds only while the ranks are close. A rank's stream is bounded
// by its reader alone, through gRPC's flow-control window (8 MiB a
// stream), which can be more than the whole memory tier: a rank opened
// late, or slowed once, falls behind by more than the tier can bridge,
// every shard the leader read is gone when it gets there, and it fetches
// the shard again, which slows it further, until the leader's window is
// full. So while a sibling (another rank's stream of the same plan) is
// reading, a stream does not start a step past the end of the window the
// sibling is in, or past two steps ahead of it if that is further: it
// waits for the sibling to move. A sibling sending its step (Deliver) is
// not waited for, nor one past its last step, so pacing never waits on
// what waits on it: a reader may drain this rank before it reads the
// sibling, whose send then blocks until this rank ends. The price is some
// slack: a stream goes on while its sibling sends (one step per send, more
// when a send is slow), so the lead can exceed the limit by those steps,
// and a lead taken before the sibling opened may last.

// Deliver tells the stream that this step's samples are read and are
// being sent: until the next Step it waits on its reader, and its
// siblings do not wait for it.
func (s *Stream) Deliver() {
	s.delivering.Store(true)
	s.p.moved()
}

// moved wakes the streams waiting in pace.
func (p *Prefetcher) moved() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.movedLocked()
}

// movedLocked is moved, called with mu held.
func (p *Prefetcher) movedLocked() {
	close(p.move)
	p.move = make(chan struct{})
}

// pace waits while a step from position first would take the stream past
// a reading sibling's window (see above).
func (s *Stream) pace(ctx context.Context, first int) error {
	for {
		s.p.mu.Lock()
		wait := s.pastSibling(first)
		ch := s.p.move
		s.p.mu.Unlock()
		if !wait {
			return nil
		}
		s.p.paced.Add(1)
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pastSibling reports whether position first lies past the lead limit
// of a reading sibling. Called with p.mu held.
func (s *Stream) pastSibling(first int) bool {
	for o := range s.p.streams {
		if o == s || o.plan != s.plan || o.b.WorldSize != s.b.WorldSize || o.b.Rank == s.b.Rank ||
			o.delivering.Load() || o.done.Load() {
			continue
		}
		if first >= s.leadLimit(int(o.pos.Load())) {
			return true
		}
	}
	return false
}

// leadLimit is the first position a stream may not start a step at while
// a sibling is at pos: the end of pos's window, and at least two steps
// past pos, so that two streams never wait on each other (a stream's
// next step starts at most one step past its position).
func (s *Stream) leadLimit(pos int) int {
	limit := pos + 2*s.b.StepSize()
	if w, ok := s.plan.WindowAt(pos); ok {
		if _, hi, ok := s.plan.WindowRange(w); ok {
			limit = max(limit, hi)
		}
	}
	return limit
}
