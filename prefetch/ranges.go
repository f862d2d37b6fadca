package prefetch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// maxRunBytes caps one coalesced range read.
const maxRunBytes = 4 << 20

// rangeBuffer holds the sample byte ranges one stream fetched ahead. The
// stream's goroutine calls want, issue and get; the reads run in the
// background and hand their results over through channels.
type rangeBuffer struct {
	s      *Stream
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	slots  map[int]*rangeSlot       // by plan position: samples wanted and not yet read
	wants  map[int32][]wantedSample // wanted since the last issue, by shard
	wg     sync.WaitGroup
	// pending is about how many bytes the samples wanted and not yet
	// read hold (or will); limit bounds it.
	pending, limit int64
}

// wantedSample is a sample the coming steps need.
type wantedSample struct {
	sample int
	pos    int
	slot   *rangeSlot
}

// rangeSlot is where a wanted sample's bytes will be: ready is closed once
// run (or err) is set.
type rangeSlot struct {
	ready chan struct{}
	run   *rangeRun
	err   error
	est   int64 // the sample's bytes as want estimated them
}

// rangeRun is one read of a shard's bytes [lo, hi), covering one or more
// samples; done is closed once data (or err) is set.
type rangeRun struct {
	lo, hi int64
	data   []byte
	err    error
	done   chan struct{}
}

func newRangeBuffer(s *Stream) *rangeBuffer {
	ctx, cancel := context.WithCancel(context.Background())
	return &rangeBuffer{s: s, ctx: ctx, cancel: cancel, slots: map[int]*rangeSlot{}, wants: map[int32][]wantedSample{},
		limit: s.p.rangeBudget(s.ds)}
}

// full reports whether the samples wanted and not yet read fill the
// budget.
func (b *rangeBuffer) full() bool { return b.pending >= b.limit }

// want notes that the sample at plan position pos is needed soon, and
// returns about how many bytes it is (0, false when it was noted before).
func (b *rangeBuffer) want(ref shuffle.Ref, pos int) (int64, bool) {
	if _, ok := b.slots[pos]; ok {
		return 0, false
	}
	o := b.s.ds.Object(int(ref.Shard))
	est := o.Bytes()
	if n, ok := b.s.ds.Count(int(ref.Shard)); ok && n > 0 {
		est /= int64(n)
	}
	slot := &rangeSlot{ready: make(chan struct{}), est: est}
	b.slots[pos] = slot
	b.wants[ref.Shard] = append(b.wants[ref.Shard], wantedSample{sample: int(ref.Sample), pos: pos, slot: slot})
	b.pending += est
	return est, true
}

// issue starts the reads of the samples wanted since the last issue: per
// shard, once its index is loaded, the samples' ranges sorted and joined
// where they are close (RangeGap), each run one read.
func (b *rangeBuffer) issue() {
	for shard, ws := range b.wants {
		delete(b.wants, shard)
		b.wg.Go(func() { b.read(int(shard), ws) })
	}
}

// read fetches the wanted samples of one shard, its runs in parallel.
func (b *rangeBuffer) read(shard int, ws []wantedSample) {
	ds, p := b.s.ds, b.s.p
	x, err := ds.ShardIndex(b.ctx, shard)
	if err != nil {
		for _, w := range ws {
			w.slot.err = err
			close(w.slot.ready)
		}
		return
	}
	type span struct {
		lo, hi int64
		w      wantedSample
	}
	spans := make([]span, 0, len(ws))
	for _, w := range ws {
		if w.sample >= x.Len() {
			w.slot.err = &storage.Error{Op: "read", Object: ds.Manifest.Shards[shard].Object, Kind: storage.ErrCorrupt, Err: errSampleOutside}
			close(w.slot.ready)
			continue
		}
		lo, hi := x.Span(w.sample)
		spans = append(spans, span{lo, hi, w})
	}
	slices.SortFunc(spans, func(a, c span) int { return cmp.Compare(a.lo, c.lo) })
	o := ds.Object(shard)
	for len(spans) > 0 {
		run := &rangeRun{lo: spans[0].lo, hi: spans[0].hi, done: make(chan struct{})}
		n := 1
		for ; n < len(spans); n++ {
			next := spans[n]
			if next.lo-run.hi > p.cfg.RangeGap || max(run.hi, next.hi)-run.lo > maxRunBytes {
				break
			}
			run.hi = max(run.hi, next.hi)
		}
		for _, sp := range spans[:n] {
			sp.w.slot.run = run
			close(sp.w.slot.ready)
		}
		spans = spans[n:]
		b.wg.Go(func() { // the runs of a shard are read at once, each one of MaxRangeReads
			run.data, run.err = p.readRange(b.ctx, o, run.lo, run.hi)
			close(run.done)
		})
	}
}

// has reports whether the sample at position pos was wanted ahead.
func (b *rangeBuffer) has(pos int) bool {
	_, ok := b.slots[pos]
	return ok
}

// errSampleOutside is a sample number past the end of its shard's index.
var errSampleOutside = errors.New("sample number outside the shard's index")

// get returns bytes holding [lo, hi) of the sample at position pos, and
// the shard offset of their first byte: from the reads issued ahead, or
// read now.
func (b *rangeBuffer) get(ctx context.Context, ref shuffle.Ref, pos int, lo, hi int64) ([]byte, int64, error) {
	slot, ok := b.slots[pos]
	if ok {
		delete(b.slots, pos)
		b.pending -= slot.est
		b.issue() // in case its read was wanted but not started
		select {
		case <-slot.ready:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		if run := slot.run; slot.err == nil && run != nil && run.lo <= lo && hi <= run.hi {
			select {
			case <-run.done:
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
			if run.err != nil {
				return nil, 0, run.err
			}
			return run.data[lo-run.lo : hi-run.lo : hi-run.lo], lo, nil
		}
	}
	data, err := b.s.p.readRange(ctx, b.s.ds.Object(int(ref.Shard)), lo, hi)
	return data, lo, err
}

// close stops the reads in flight and waits for them.
func (b *rangeBuffer) close() {
	b.cancel()
	b.wg.Wait()
}

// readRange reads bytes [lo, hi) of o from storage, one of at most
// MaxRangeReads at a time, and counts it.
func (p *Prefetcher) readRange(ctx context.Context, o storage.Object, lo, hi int64) ([]byte, error) {
	select {
	case p.rangeSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.rangeSem }()
	if lo < 0 || hi < lo || (o.Size > 0 && hi > o.Size) {
		return nil, &storage.Error{Op: "read", Object: o.URL, Kind: storage.ErrCorrupt, Err: fmt.Errorf("sample bytes [%d, %d) are outside the %d-byte object", lo, hi, o.Size)}
	}
	if limit := p.shards.cfg.MaxShardBytes; hi-lo > limit {
		return nil, &storage.Error{Op: "read", Object: o.URL, Kind: storage.ErrTooLarge, Err: fmt.Errorf("a sample of %d bytes at %d, over the per-shard limit of %d (stokerd --max-shard-size)", hi-lo, lo, limit)}
	}
	src, err := p.shards.sources.For(o.URL)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, hi-lo)
	if err := src.ReadAt(ctx, o, buf, lo); err != nil {
		return nil, err
	}
	p.rangeRequests.Add(1)
	p.rangeBytes.Add(uint64(hi - lo))
	return buf, nil
}
