package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/pipeline"
	"github.com/stoker-data/stoker/server/shm"
	"github.com/stoker-data/stoker/shuffle"
)

// readyPool is the server's pipeline workers, started by the first
// stream that asks for a pipeline.
type readyPool struct {
	cfg  pipeline.Config
	once sync.Once
	mu   sync.Mutex // guards pool
	pool *pipeline.Pool

	sent      atomic.Uint64 // samples of this node's streams other nodes preprocessed
	fallbacks atomic.Uint64 // samples sent to another node and done here after all
	served    atomic.Uint64 // samples preprocessed for other nodes' streams
}

func (r *readyPool) get() *pipeline.Pool {
	r.once.Do(func() {
		r.mu.Lock()
		r.pool = pipeline.NewPool(r.cfg)
		r.mu.Unlock()
	})
	return r.pool
}

// close stops the workers, if they were started.
func (r *readyPool) close() {
	r.mu.Lock()
	p := r.pool
	r.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// stats reports the pool's work (zeros before the first pipeline stream).
func (r *readyPool) stats() *stokerv1.PipelineStats {
	r.mu.Lock()
	p := r.pool
	r.mu.Unlock()
	st := &stokerv1.PipelineStats{JpegDecoder: pipeline.JPEGDecoder,
		PeerSamplesSent: r.sent.Load(), PeerFallbacks: r.fallbacks.Load(), PeerSamplesServed: r.served.Load()}
	if p == nil {
		return st
	}
	m := p.Stats()
	st.Workers, st.Samples, st.BusyNanos, st.Errors = uint32(m.Workers), m.Samples, uint64(m.Busy), m.Errors
	st.DctScaled, st.BytesOut = m.DCTScaled, m.BytesOut
	return st
}

// readyStream is a stream whose samples go through a pipeline: it sends
// tensors, not field bytes.
type readyStream struct {
	p      *pipeline.Pipeline
	pool   *pipeline.Pool
	spec   *stokerv1.Pipeline
	url    string
	format string
	any    bool // preprocess_on ANY in a cluster: samples go to their shards' owners
	// elsewhere, with any and a pipeline whose rows do not depend on the
	// data, says which shards another node owns: their samples' bytes
	// are not read here (unless their owner fails).
	elsewhere func(shard int) bool
	buf       []byte // TCP: the step's tensors, reused from step to step
	release   func() // gives buf's bytes back to the limits
}

// openReady compiles a stream's pipeline; nil when it asks for none. A
// columnar dataset's stream never gets here (wireFormat.stream).
func (l *loader) openReady(req *stokerv1.StreamBatchesRequest, ds *dataset.Dataset) (*readyStream, error) {
	if req.GetPipeline() == nil {
		return nil, nil
	}
	if req.GetGds() {
		return nil, invalid("gds", "a pipeline stream sends tensors, not extents: ask for one or the other")
	}
	p, err := pipeline.Compile(req.GetPipeline())
	if err != nil {
		return nil, invalid("pipeline", err.Error())
	}
	r := &readyStream{p: p, pool: l.s.ready.get(), release: func() {}, spec: req.GetPipeline(), url: req.GetUrl(), format: req.GetFormat(),
		any: req.GetPreprocessOn() == stokerv1.PreprocessOn_PREPROCESS_ON_ANY && l.s.cfg.Cluster != nil}
	if r.any && p.FixedRows() {
		node := l.s.cfg.Cluster
		r.elsewhere = func(shard int) bool {
			_, ok := remoteOwner(node, ds.Object(shard))
			return ok
		}
	}
	return r, nil
}

// sample reads the sample at pos for the step: without its bytes when
// its shard's owner is another node that preprocesses it (Meta), else
// with them.
func (r *readyStream) sample(ctx context.Context, ps *prefetch.Stream, plan *shuffle.Plan, pos int) (*prefetch.SampleData, error) {
	if r != nil && r.elsewhere != nil && r.elsewhere(int(plan.At(pos).Shard)) {
		return ps.Meta(ctx, pos)
	}
	return ps.Sample(ctx, pos)
}

func (r *readyStream) close() {
	if r != nil {
		r.release()
	}
}

// sendReady runs one step's samples (positions from lo on) through the
// stream's pipeline into a lease of its region, sent as one message, or
// into its buffer, sent in messages of about MaxPartBytes split by rows;
// the last is final and carries the cursor.
func (l *loader) sendReady(stream stokerv1.Loader_StreamBatchesServer, r *readyStream, sh *shmStream, ds *dataset.Dataset, ps *prefetch.Stream,
	samples []*prefetch.SampleData, lo int, epoch, step uint64, rank uint32, after uint64) error {
	ctx := stream.Context()
	inputs := make([]pipeline.Input, len(samples))
	refs := make([]shuffle.Ref, len(samples))
	for i, d := range samples {
		refs[i] = d.Ref
		inputs[i] = pipeline.Input{Key: d.Key, Object: ds.Manifest.Shards[d.Ref.Shard].Object, Position: lo + i, Fields: pipelineFields(d.Fields), Deferred: d.Meta}
	}
	b, err := r.p.Prepare(epoch, inputs)
	if err != nil {
		return pipelineStatus(err)
	}
	var dst []byte
	var lease *shm.Lease
	if sh != nil {
		if lease, err = sh.region.Alloc(ctx, max(b.Size(), 1), 0, step); err != nil {
			if errors.Is(err, shm.ErrTooBig) {
				return status.Errorf(codes.ResourceExhausted, "shm: a step's tensors take %d bytes, more than the region's %d: ask for a larger shm_region_bytes",
					b.Size(), sh.region.Size())
			}
			return shmStatus(err)
		}
		dst = sh.region.Bytes(lease)
	} else {
		if dst, err = r.buffer(ctx, l, b.Size()); err != nil {
			return err
		}
	}
	if r.any {
		fetch := func(i int) ([]pipeline.Field, error) { // a deferred sample's bytes, read here after all
			d, err := ps.Sample(ctx, lo+i)
			if err != nil {
				return nil, toStatus(err)
			}
			return pipelineFields(d.Fields), nil
		}
		err = l.runAnywhere(ctx, r, ds, b, dst, inputs, refs, epoch, fetch)
	} else {
		err = r.pool.Run(ctx, b, dst)
	}
	if err != nil {
		return pipelineStatus(err)
	}
	newMsg := func(first, n int) *stokerv1.StreamBatchesResponse {
		msg := &stokerv1.StreamBatchesResponse{Epoch: epoch, Step: step, Rank: rank, Samples: make([]*stokerv1.Sample, n)}
		for i := range n {
			d, e := samples[first+i], b.Errors()[first+i]
			msg.Samples[i] = &stokerv1.Sample{Key: d.Key, Position: uint64(lo + first + i), Shard: uint32(d.Ref.Shard)}
			if e != nil {
				msg.Samples[i].Error = e.Error()
			}
		}
		return msg
	}
	tensors := b.Tensors()
	if sh != nil {
		msg := newMsg(0, len(samples))
		for _, t := range tensors {
			tp := tensorProto(t, 0, b.Len())
			tp.ShmOffset, tp.ShmLength = uint64(lease.Offset()+t.Offset), uint64(t.Len)
			msg.Tensors = append(msg.Tensors, tp)
		}
		sh.announce(msg, lease, b.Size())
		msg.Final = true
		msg.Cursor = &stokerv1.Cursor{Epoch: epoch, Position: after, PlanVersion: shuffle.PlanVersion}
		return l.send(stream, msg, len(samples), b.Size())
	}
	rowBytes := 0
	for _, t := range tensors {
		rowBytes += t.Len / max(b.Len(), 1)
	}
	per := max(1, l.s.cfg.MaxPartBytes/max(rowBytes, 1))
	for first := 0; first < b.Len() || first == 0; first += per {
		n := min(per, b.Len()-first)
		msg := newMsg(first, n)
		bytes := 0
		for _, t := range tensors {
			tp := tensorProto(t, first, n)
			off, ln := t.RowRange(first, first+n)
			tp.Data = dst[t.Offset+off : t.Offset+off+ln]
			bytes += ln
			msg.Tensors = append(msg.Tensors, tp)
		}
		if first+n >= b.Len() {
			msg.Final = true
			msg.Cursor = &stokerv1.Cursor{Epoch: epoch, Position: after, PlanVersion: shuffle.PlanVersion}
		}
		if err := l.send(stream, msg, n, bytes); err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	return nil
}

// tensorProto is t's message for rows [first, first+n) (no bytes yet).
func tensorProto(t pipeline.Tensor, first, n int) *stokerv1.Tensor {
	tp := &stokerv1.Tensor{Name: t.Name, Dtype: t.DType, RowOffset: uint64(first), Rows: uint64(n)}
	for _, d := range t.Shape {
		tp.Shape = append(tp.Shape, uint64(d))
	}
	if t.Lengths != nil {
		for _, l := range t.Lengths[first : first+n] {
			tp.Lengths = append(tp.Lengths, uint64(l))
		}
	}
	return tp
}

// buffer is the stream's buffer of at least n bytes, its growth counted
// against the limits on the bytes held for streams (those of shm
// regions: --max-shm).
func (r *readyStream) buffer(ctx context.Context, l *loader, n int) ([]byte, error) {
	if n <= cap(r.buf) {
		return r.buf[:n], nil
	}
	release, err := l.s.limits.acquire(ctx, 0, int64(n))
	if err != nil {
		return nil, err
	}
	r.release()
	r.release = release
	r.buf = make([]byte, n)
	return r.buf, nil
}

// pipelineFields are a sample's fields as the pipeline takes them (the
// same bytes).
func pipelineFields(fields []prefetch.FieldData) []pipeline.Field {
	out := make([]pipeline.Field, len(fields))
	for k, f := range fields {
		out[k] = pipeline.Field{Name: f.Name, Data: f.Data}
	}
	return out
}

// pipelineStatus maps a pipeline error to a status that keeps its
// message (it names the sample, the output and the field).
func pipelineStatus(err error) error {
	if _, ok := status.FromError(err); ok { // already a status (reading a sample's bytes)
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, pipeline.ErrSpec), errors.Is(err, pipeline.ErrMissingField), errors.Is(err, pipeline.ErrShape):
		code = codes.InvalidArgument
	case errors.Is(err, pipeline.ErrDecode):
		code = codes.DataLoss
	case errors.Is(err, pipeline.ErrTooLarge):
		code = codes.ResourceExhausted
	case errors.Is(err, pipeline.ErrClosed):
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}

// shmStatus maps an error of a region's alloc.
func shmStatus(err error) error {
	if errors.Is(err, shm.ErrRegionClosed) {
		return status.Error(codes.Canceled, "shm: region closed")
	}
	return status.FromContextError(err).Err()
}

// announce adds the lease (of n bytes) to msg, and on the stream's first
// message the region.
func (s *shmStream) announce(msg *stokerv1.StreamBatchesResponse, lease *shm.Lease, n int) {
	s.reg.AddServed(uint64(n))
	msg.ShmLease = &stokerv1.ShmLease{Id: lease.ID(), Offset: uint64(lease.Offset()), Length: uint64(lease.Len())}
	if !s.announced {
		s.announced = true
		msg.ShmRegion = &stokerv1.ShmRegion{Id: s.region.ID(), Path: s.region.Path(), Size: uint64(s.region.Size())}
	}
}
