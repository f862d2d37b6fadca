package prefetch

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// fetchMode is how a window's bytes are fetched.
type fetchMode int

const (
	// modeWhole fetches whole shards: the window (and the next) fits the
	// memory tier, so every shard of it stays there while its samples,
	// spread over the window, are read.
	modeWhole fetchMode = iota
	// modeRanged fetches the byte ranges of the samples the coming
	// batches need, except for shards of the kept subset, fetched whole.
	modeRanged
)

// Stream is one reader's walk through a plan. Its methods are called by
// one goroutine; the position is read concurrently by the oracle.
type Stream struct {
	p     *Prefetcher
	ds    *dataset.Dataset
	plan  *shuffle.Plan
	b     shuffle.Batching
	start int
	pos   atomic.Int64 // where the reader is in the plan
	ahead int          // steps before this one have had their prefetch issued

	delivering atomic.Bool // the step is read and being sent (Deliver): siblings do not wait for it
	done       atomic.Bool // past the last step: siblings do not wait for it

	modes     map[int]fetchMode          // by window
	held      []*cache.Ref               // sample ranges held for the step being built
	windows   *windowRefs                // whole shards held while their window is read
	indexes   map[int32]*shardIndexEntry // the shard indexes this stream uses, by shard
	ranges    *rangeBuffer               // sample ranges fetched ahead
	preload   int                        // windows before it have had their shard indexes read ahead
	elsewhere func(shard int) bool       // shards whose bytes the reader does not want ahead (SetElsewhere)

	Stall time.Duration // time this stream waited for shard bytes
}

// shardIndexEntry is a shard's index and the window it serves.
type shardIndexEntry struct {
	x      *wds.ShardIndex
	window int
}

// SampleData is one sample of a step: its place, its index entry and its
// fields' bytes, valid until EndStep.
type SampleData struct {
	Ref    shuffle.Ref
	Key    string
	Index  *wds.ShardIndex // the shard's index; the sample is Index's Ref.Sample
	Fields []FieldData
	Tier   cache.Tier // where the bytes came from (TierNone: storage)
	Meta   bool       // from Meta: the fields' names, no bytes
}

// Size is the bytes of the sample's fields.
func (d *SampleData) Size() int {
	n := 0
	for _, f := range d.Fields {
		n += len(f.Data)
	}
	return n
}

// FieldData is one field of a sample.
type FieldData struct {
	Name string
	Data []byte
}

// Step returns the positions [lo, hi) of this rank's batch at step k and
// the cursor position after the step, counting the windows the step
// reaches first (a wait counted as stall); ok is false past the end of
// the epoch.
func (s *Stream) Step(ctx context.Context, k int) (lo, hi, after int, ok bool, err error) {
	s.delivering.Store(false)
	size := s.b.StepSize()
	first := s.start + k*size
	if err := s.ensure(ctx, first+size); err != nil {
		return 0, 0, 0, false, err
	}
	total, complete := s.plan.Total()
	if complete && (first >= total || (s.b.DropLast && first+size > total)) {
		s.done.Store(true)
		s.p.moved()
		return 0, 0, 0, false, nil
	}
	if err := s.pace(ctx, first); err != nil {
		return 0, 0, 0, false, err
	}
	lo, hi = s.b.Batch(total, s.start, k)
	return lo, hi, s.b.After(total, s.start, k), true, nil
}

// Total returns the epoch's sample count, and false while it is not known
// (some window is not counted yet).
func (s *Stream) Total() (int, bool) { return s.plan.Total() }

// Ensure counts windows until positions [0, pos) are fixed or the plan is
// complete (a wait counted as stall).
func (s *Stream) Ensure(ctx context.Context, pos int) error { return s.ensure(ctx, pos) }

// ensure counts windows until positions [0, pos) are fixed or the plan is
// complete.
func (s *Stream) ensure(ctx context.Context, pos int) error {
	for {
		known := s.plan.Known()
		if _, complete := s.plan.Total(); complete || known >= pos {
			return nil
		}
		k := s.windowAt(known)
		t := time.Now()
		err := s.p.countWindow(ctx, s.ds, s.plan, k)
		s.stalled(time.Since(t))
		if err != nil {
			return err
		}
	}
}

// windowAt is the window whose first position is pos, the first position
// not fixed: the first window not counted.
func (s *Stream) windowAt(pos int) int {
	for k := range s.plan.Windows() {
		if !s.plan.Counted(k) {
			return k
		}
		if _, hi, ok := s.plan.WindowRange(k); ok && hi > pos {
			return k
		}
	}
	return s.plan.Windows() - 1
}

func (s *Stream) stalled(d time.Duration) {
	s.Stall += d
	s.p.stallNanos.Add(int64(d))
}

// mode is how window w's bytes are fetched, where its shards' samples can
// be read as byte ranges (see whole).
func (s *Stream) mode(w int) fetchMode {
	if m, ok := s.modes[w]; ok {
		return m
	}
	m := modeWhole
	var bytes int64
	for _, i := range s.plan.WindowShards(w, nil) {
		bytes += s.ds.Object(i).Bytes()
	}
	// Whole shards when this window, the next one and the look-ahead fit
	// the memory tier together.
	if mem, _ := s.p.cache.Capacity(); 3*bytes > mem {
		m = modeRanged
	}
	s.modes[w] = m
	return m
}

// whole reports whether shard i is fetched whole: a shard none of whose
// samples can be read alone as a byte range (the dataset's Layout says: a
// gzipped tar, a columnar unit), one in a whole window, or a shard of the
// kept subset.
func (s *Stream) whole(i int) bool {
	if !s.ds.Layout.SampleRanges(s.ds.Object(i)) || s.mode(s.plan.WindowOf(i)) == modeWhole {
		return true
	}
	keep, _ := s.p.keep.keeps(s.ds.Key(i))
	return keep
}

// Advance moves the stream to step k and fetches the bytes of the coming
// steps in the order they are needed: whole shards within the look-ahead
// budget of the memory tier, and the byte ranges of samples (see
// fetchMode) while fewer than the range budget's bytes are in flight. A
// window the look-ahead reaches before it is counted is counted in the
// background, and so are the windows after it that fit the budget (in a
// whole window, counting is the window's fetch).
func (s *Stream) Advance(k int) {
	size := s.b.StepSize()
	s.pos.Store(int64(min(s.start+k*size+s.b.Rank*s.b.BatchSize, max(s.plan.Known(), s.start))))
	s.p.moved() // a sibling may wait for this stream to move (see pace)
	s.forget()
	from := max(s.ahead, k)
	until := k + s.p.cfg.AheadBatches
	budget := s.p.aheadBytes()
	wholeBudget := s.p.wholeAheadBytes()
	var spent int64
	wholeFull, rangesFull := false, false
	seen := map[int32]bool{}
	defer s.ranges.issue() // the sample ranges wanted on the way
	for j := from; j < until && !(wholeFull && rangesFull); j++ {
		total, complete := s.plan.Total()
		if complete && s.start+j*size >= total {
			break
		}
		if !complete && s.start+(j+1)*size > total {
			s.countAhead(total, budget-spent)
			break
		}
		lo, hi := s.b.Batch(total, s.start, j)
		stopped := false // a budget stopped this step part way: go on from it next time
		for pos := lo; pos < hi; pos++ {
			ref := s.plan.At(pos)
			i := int(ref.Shard)
			if w := s.plan.WindowOf(i); w >= s.preload {
				s.preloadIndexes(w)
				s.preload = w + 1
			}
			if s.elsewhere != nil && s.elsewhere(i) {
				continue // its samples are read elsewhere (Meta); a fallback reads on demand
			}
			if s.whole(i) {
				if seen[ref.Shard] {
					continue
				}
				o := s.ds.Object(i)
				if s.p.cache.Contains(s.ds.Key(i)) != cache.TierNone {
					seen[ref.Shard] = true
					continue // cached: read by its samples' bytes
				}
				// Within the budget, and only what the memory tier would
				// keep: it holds shards needed sooner, and a shard it does
				// not take would be fetched again when it is read.
				if wholeFull || spent > 0 && spent+o.Bytes() > wholeBudget || !s.p.cache.MemoryWouldTake(s.ds.Key(i), o.Bytes()) {
					wholeFull, stopped = true, true
					continue
				}
				seen[ref.Shard] = true
				spent += o.Bytes()
				s.windows.fetch(ref.Shard, s.ds.Key(i), s.plan.WindowOf(i), o)
				continue
			}
			if s.p.keep.keptElsewhere(s.ds.Key(i)) {
				continue // read from the node that keeps it, when needed
			}
			if rangesFull || s.ranges.full() {
				rangesFull, stopped = true, true
				continue
			}
			s.ranges.want(ref, pos)
		}
		if !stopped {
			s.ahead = j + 1
		}
	}
}

// preloadIndexes reads the shard indexes of window w in the background, in
// a few joined reads from the index beside the shards (when the dataset
// has one): a stream's first read of each shard then finds its index.
func (s *Stream) preloadIndexes(w int) {
	if read := s.ds.PreloadShardIndexes(s.plan.WindowShards(w, nil)); read != nil {
		s.p.shards.wg.Go(func() { read(context.Background()) })
	}
}

// countAhead counts in the background the first uncounted window (the one
// at position known) and those after it whose shards fit room bytes.
func (s *Stream) countAhead(known int, room int64) {
	for w := s.windowAt(known); w < s.plan.Windows(); w++ {
		if !s.plan.Counted(w) {
			s.countWindowAhead(w)
		}
		for _, i := range s.plan.WindowShards(w, nil) {
			room -= s.ds.Object(i).Bytes()
		}
		if room <= 0 {
			return
		}
	}
}

// countWindowAhead counts window k in the background, unless it is counted.
func (s *Stream) countWindowAhead(k int) {
	if s.plan.Counted(k) {
		return
	}
	ds, plan, p := s.ds, s.plan, s.p
	p.shards.wg.Go(func() {
		if err := p.countWindow(context.Background(), ds, plan, k); err != nil {
			p.log.Debug("counting a window ahead failed", "url", ds.Manifest.URL, "window", k, "err", err)
		}
	})
}

// forget drops the indexes and whole shards of windows behind the reader.
func (s *Stream) forget() {
	pos := int(s.pos.Load())
	behind := func(w int) bool {
		_, hi, ok := s.plan.WindowRange(w)
		return ok && hi <= pos
	}
	for i, e := range s.indexes {
		if behind(e.window) {
			delete(s.indexes, i)
		}
	}
	s.windows.release(behind)
}

// index returns shard i's sample index.
func (s *Stream) index(ctx context.Context, i int32) (*wds.ShardIndex, error) {
	if e, ok := s.indexes[i]; ok {
		return e.x, nil
	}
	t := time.Now()
	x, err := s.ds.ShardIndex(ctx, int(i))
	if d := time.Since(t); d > time.Millisecond {
		s.stalled(d)
	}
	if err != nil {
		return nil, err
	}
	s.indexes[i] = &shardIndexEntry{x: x, window: s.plan.WindowOf(int(i))}
	return x, nil
}

// indexed returns the place of the sample at position pos, its shard's
// index and its number in that index, checked against the index.
func (s *Stream) indexed(ctx context.Context, pos int) (shuffle.Ref, *wds.ShardIndex, int, error) {
	ref := s.plan.At(pos)
	x, err := s.index(ctx, ref.Shard)
	if err != nil {
		return ref, nil, 0, err
	}
	j := int(ref.Sample)
	if j >= x.Len() {
		return ref, nil, 0, &storage.Error{Op: "read", Object: s.ds.Manifest.Shards[ref.Shard].Object, Kind: storage.ErrCorrupt,
			Err: fmt.Errorf("sample %d of a shard indexed with %d", j, x.Len())}
	}
	return ref, x, j, nil
}

// Sample returns the sample at position pos of the plan, its bytes valid
// until EndStep: from a whole shard in memory (fetched if need be), from
// the disk tier (the sample's bytes alone), or from the sample ranges
// fetched ahead (or read now).
func (s *Stream) Sample(ctx context.Context, pos int) (*SampleData, error) {
	ref, x, j, err := s.indexed(ctx, pos)
	if err != nil {
		return nil, err
	}
	lo, hi := x.Span(j)
	base, baseOff, tier, err := s.bytes(ctx, ref, pos, lo, hi)
	if err != nil {
		return nil, err
	}
	fields, err := SampleFields(s.ds.Manifest.Shards[ref.Shard].Object, x, j, base, baseOff)
	if err != nil {
		return nil, err
	}
	return &SampleData{Ref: ref, Key: x.Key(j), Index: x, Tier: tier, Fields: fields}, nil
}

// SampleFields are the fields of sample j of a shard indexed by x (its
// object), as slices of base, which holds the shard's bytes from offset
// baseOff on; a field outside base is ErrCorrupt, naming it.
func SampleFields(object string, x *wds.ShardIndex, j int, base []byte, baseOff int64) ([]FieldData, error) {
	fields := make([]FieldData, x.NumFields(j))
	for f := range fields {
		fl := x.Field(j, f)
		a, b := fl.Offset-baseOff, fl.Offset+fl.Size-baseOff
		if a < 0 || b > int64(len(base)) || a > b {
			return nil, &storage.Error{Op: "read", Object: object, Kind: storage.ErrCorrupt,
				Err: fmt.Errorf("sample %q field %q: bytes [%d, %d) are outside the %d read", x.Key(j), fl.Name, fl.Offset, fl.Offset+fl.Size, len(base))}
		}
		fields[f] = FieldData{Name: fl.Name, Data: base[a:b:b]}
	}
	return fields, nil
}

// SetElsewhere tells the stream which shards' bytes its reader does not
// want fetched ahead: their samples are read with Meta (another node
// works on their bytes). Sample still reads any sample on demand. Call
// it before the first Advance; f is called from Advance's goroutine.
func (s *Stream) SetElsewhere(f func(shard int) bool) { s.elsewhere = f }

// Meta returns the sample at position pos without its bytes: its place,
// key, index entry, and its fields' names (Data nil). It reads the
// shard's index if need be, never the shard.
func (s *Stream) Meta(ctx context.Context, pos int) (*SampleData, error) {
	ref, x, j, err := s.indexed(ctx, pos)
	if err != nil {
		return nil, err
	}
	d := &SampleData{Ref: ref, Key: x.Key(j), Index: x, Tier: cache.TierNone, Meta: true, Fields: make([]FieldData, x.NumFields(j))}
	for f := range d.Fields {
		d.Fields[f] = FieldData{Name: x.Field(j, f).Name}
	}
	return d, nil
}

// bytes returns bytes holding [lo, hi) of shard ref.Shard, and the offset
// in the shard of their first byte.
func (s *Stream) bytes(ctx context.Context, ref shuffle.Ref, pos int, lo, hi int64) (data []byte, off int64, tier cache.Tier, err error) {
	i := int(ref.Shard)
	key := s.ds.Key(i)
	if s.ranges.has(pos) {
		return s.rangeBytes(ctx, ref, pos, lo, hi)
	}
	r, t, err := s.p.cache.AcquireRange(key, lo, hi-lo)
	if err != nil {
		return nil, 0, cache.TierNone, err
	}
	if r != nil {
		s.held = append(s.held, r)
		if t == cache.TierDisk {
			s.p.diskRangeHits.Add(1)
		}
		return r.Bytes(), lo, t, nil
	}
	// Not cached (a miss counted): a shard read whole is fetched (or its
	// fetch started ahead waited for) and held until its window is read,
	// so that a cache too full to take it does not make each step fetch it
	// again. A shard in either tier was read above by the sample's own
	// bytes: the disk tier's are not promoted, so a kept shard on disk
	// never pushes out of memory the shards the windows read now.
	if s.whole(i) {
		t := time.Now()
		s.windows.fetch(ref.Shard, key, s.plan.WindowOf(i), s.ds.Object(i))
		r, err := s.windows.wait(ctx, ref.Shard)
		s.stalled(time.Since(t))
		if err != nil {
			return nil, 0, cache.TierNone, err
		}
		return r.Bytes(), 0, cache.TierNone, nil
	}
	if s.p.keep.keptElsewhere(key) {
		// Another node keeps it: its samples come from there, not storage.
		t := time.Now()
		b, err := s.p.shards.GetRangeRemote(ctx, s.ds.Object(i), lo, hi-lo)
		s.stalled(time.Since(t))
		if err == nil {
			return b, lo, cache.TierNone, nil
		}
		if !errors.Is(err, ErrLocal) {
			s.p.log.Warn("reading a sample from its shard's owner failed: reading storage", "object", s.ds.Object(i).URL, "err", err)
		}
	}
	return s.rangeBytes(ctx, ref, pos, lo, hi)
}

// rangeBytes reads a sample's range from storage (or the read issued
// ahead), counting the wait as stall.
func (s *Stream) rangeBytes(ctx context.Context, ref shuffle.Ref, pos int, lo, hi int64) ([]byte, int64, cache.Tier, error) {
	t := time.Now()
	b, boff, err := s.ranges.get(ctx, ref, pos, lo, hi)
	if d := time.Since(t); d > 100*time.Microsecond {
		s.stalled(d)
	}
	return b, boff, cache.TierNone, err
}

// Shard returns the bytes of shard i, waiting for its fetch if needed; the
// wait is counted as stall time. The caller releases the Ref.
func (s *Stream) Shard(ctx context.Context, i int) (*cache.Ref, error) {
	key := s.ds.Key(i)
	if r, _, ok := s.p.shards.cache.Acquire(key); ok {
		return r, nil
	}
	t := time.Now()
	r, err := s.p.shards.getMissed(ctx, key, s.ds.Object(i))
	s.stalled(time.Since(t))
	return r, err
}

// EndStep releases what the step's samples held: call it once the step
// is sent.
func (s *Stream) EndStep() {
	for _, r := range s.held {
		r.Release()
	}
	s.held = s.held[:0]
}

// Close releases what the stream holds and unregisters it.
func (s *Stream) Close() {
	s.EndStep()
	s.ranges.close()
	s.windows.close()
	s.p.mu.Lock()
	delete(s.p.streams, s)
	s.p.movedLocked()
	s.p.mu.Unlock()
}
