package server

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	grpcpeer "google.golang.org/grpc/peer"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// streamTracker is what the server knows of one open batch stream, for
// the status page and the per-dataset metrics. The stream's goroutine
// writes it (begin, sent, close); the status page reads it concurrently,
// so the figures it shows are atomics.
type streamTracker struct {
	s       *Server
	id      uint64
	url     string
	label   string // the dataset's metric label
	epoch   uint64
	rank    uint32
	world   uint32
	batch   uint32
	client  string
	shm     bool
	started time.Time
	ps      *prefetch.Stream // read by the stream's goroutine only

	batchSeconds prometheus.Observer
	samplesSent  prometheus.Counter
	bytesSent    prometheus.Counter

	position atomic.Int64 // the cursor after the last step sent
	total    atomic.Int64 // the epoch's samples, -1 while not known
	samples  atomic.Uint64
	bytes    atomic.Uint64
	steps    atomic.Uint64
	stall    atomic.Int64 // nanoseconds
	closed   sync.Once

	trace *streamTrace // nil: tracing off
	fetch time.Time    // when the step being built had its samples (zero: not told)
}

// streamSet is the open streams. Safe for concurrent use.
type streamSet struct {
	next atomic.Uint64
	mu   sync.Mutex // guards open
	open map[uint64]*streamTracker
}

func newStreamSet() *streamSet { return &streamSet{open: map[uint64]*streamTracker{}} }

// track registers a stream that opened: call begin and sent around each
// step, and close (deferred) when it ends.
func (s *Server) track(ctx context.Context, req *stokerv1.StreamBatchesRequest, ps *prefetch.Stream, start int) *streamTracker {
	h := s.hist
	label := h.datasets.acquire(req.GetUrl())
	t := &streamTracker{s: s, id: s.streams.next.Add(1), url: req.GetUrl(), label: label, epoch: req.GetEpoch(),
		rank: req.GetRank(), world: max(1, req.GetWorldSize()), batch: req.GetBatchSize(), shm: req.GetShm(),
		started: time.Now(), ps: ps,
		batchSeconds: h.batch.WithLabelValues(label), samplesSent: h.samples.WithLabelValues(label), bytesSent: h.bytes.WithLabelValues(label)}
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		t.client = p.Addr.String()
	}
	t.position.Store(int64(start))
	t.total.Store(-1)
	t.trace = s.traceStream(ctx, t)
	h.streams.WithLabelValues(label).Inc()
	s.streams.mu.Lock()
	s.streams.open[t.id] = t
	s.streams.mu.Unlock()
	return t
}

// begin marks the start of a step.
func (t *streamTracker) begin() time.Time {
	t.fetch = time.Time{}
	return time.Now()
}

// fetched marks the step's samples gathered: what follows is sending.
func (t *streamTracker) fetched() { t.fetch = time.Now() }

// sent records a step that began at start and has been sent: n samples
// of the given bytes, the cursor now at after.
func (t *streamTracker) sent(start time.Time, n, bytes, after int) {
	now := time.Now()
	t.batchSeconds.Observe(now.Sub(start).Seconds())
	t.trace.step(t.steps.Load(), start, t.fetch, now, n, bytes, after)
	t.samplesSent.Add(float64(n))
	t.bytesSent.Add(float64(bytes))
	t.samples.Add(uint64(n))
	t.bytes.Add(uint64(bytes))
	t.steps.Add(1)
	t.position.Store(int64(after))
	if total, ok := t.ps.Total(); ok {
		t.total.Store(int64(total))
	}
	t.stall.Store(int64(t.ps.Stall))
}

// sampleBytes is the bytes of a step's samples.
func sampleBytes(samples []*prefetch.SampleData) int {
	n := 0
	for _, d := range samples {
		n += sampleSize(d)
	}
	return n
}

// sampleSize is the bytes of d's fields: those read, or, for a sample
// sent unread as extents of the disk tier, those its index gives.
func sampleSize(d *prefetch.SampleData) int {
	if d.Meta && d.Tier == cache.TierDisk {
		return int(sampleFieldBytes(d.Index, int(d.Ref.Sample)))
	}
	return d.Size()
}

// close records the stream's stall and forgets it. Safe to call twice.
func (t *streamTracker) close() {
	t.closed.Do(func() {
		t.s.hist.stall.WithLabelValues(t.label).Observe(t.ps.Stall.Seconds())
		t.trace.end(t)
		if t.label != otherDataset {
			t.s.hist.datasets.release(t.url)
		}
		t.s.streams.mu.Lock()
		delete(t.s.streams.open, t.id)
		t.s.streams.mu.Unlock()
	})
}

// list returns the open streams, oldest first.
func (ss *streamSet) list() []*streamTracker {
	ss.mu.Lock()
	out := make([]*streamTracker, 0, len(ss.open))
	for _, t := range ss.open {
		out = append(out, t)
	}
	ss.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
