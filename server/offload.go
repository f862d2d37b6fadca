package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/cluster"
	"github.com/stoker-data/stoker/server/pipeline"
	"github.com/stoker-data/stoker/shuffle"
)

// Preprocessing offloaded to the owners of the shards (preprocess_on ANY):
// the node serving a pipeline stream sends each owner the samples of its
// shards (by shard, sample number and position), the owner reads their
// bytes from its cache and runs the stream's pipeline on them, and the
// serving node copies each sample's rows into the step's batch. The
// augmentations are keyed by (seed, epoch, position), so a row is the one
// the serving node would compute; the collate and the order stay on the
// serving node. A sample whose owner is this node, or is gone, or fails,
// or answers something unusable, is preprocessed here.

// Bounds on a Preprocess request: the samples in it, and the bytes of
// its answer (a node's receive limit for a peer's message is 16 MiB; see
// cluster.PeerConfig.MaxMessageBytes).
const (
	maxPreprocessSamples = 4096
	maxPreprocessBytes   = 8 << 20
	// preprocessTimeout bounds one Preprocess call: past it the serving
	// node does the samples itself.
	preprocessTimeout = 30 * time.Second
	// preprocessInFlight is the most calls a step has in flight to one owner.
	preprocessInFlight = 4
)

// preprocessSample is a checked PreprocessSample.
type preprocessSample struct {
	shard, sample int
	etag          string
	position      int
}

// parsePreprocess checks a Preprocess request's integers and sizes and
// names the first bad field.
func parsePreprocess(req *stokerv1.PreprocessRequest) ([]preprocessSample, error) {
	switch n := len(req.GetSamples()); {
	case req.GetUrl() == "":
		return nil, invalid("url", "is empty")
	case req.GetPipeline() == nil:
		return nil, invalid("pipeline", "is unset")
	case n == 0:
		return nil, invalid("samples", "is empty")
	case n > maxPreprocessSamples:
		return nil, invalid("samples", fmt.Sprintf("%d samples, over %d", n, maxPreprocessSamples))
	}
	out := make([]preprocessSample, len(req.GetSamples()))
	for i, s := range req.GetSamples() {
		field := fmt.Sprintf("samples[%d]", i)
		switch {
		case s.GetShard() > maxShardNumber:
			return nil, invalid(field+".shard", fmt.Sprintf("%d is over %d", s.GetShard(), maxShardNumber))
		case s.GetSample() > maxShardNumber:
			return nil, invalid(field+".sample", fmt.Sprintf("%d is over %d", s.GetSample(), maxShardNumber))
		case len(s.GetEtag()) > maxETagBytes:
			return nil, invalid(field+".etag", fmt.Sprintf("is %d bytes, over %d", len(s.GetEtag()), maxETagBytes))
		case s.GetPosition() > maxPosition:
			return nil, invalid(field+".position", fmt.Sprintf("%d is past the end of any epoch", s.GetPosition()))
		}
		out[i] = preprocessSample{shard: int(s.GetShard()), sample: int(s.GetSample()), etag: s.GetEtag(), position: int(s.GetPosition())}
	}
	return out, nil
}

// maxShardNumber bounds a shard's index in a manifest and a sample's
// number in a shard (shuffle.Ref holds them as int32).
const maxShardNumber = 1<<31 - 1

// Preprocess runs a pipeline on samples this node holds, for the node
// serving their stream. Each sample gets its rows or its error: the
// pipeline runs as if masking, so one bad sample does not cost the others.
func (p *peer) Preprocess(ctx context.Context, req *stokerv1.PreprocessRequest) (*stokerv1.PreprocessResponse, error) {
	samples, err := parsePreprocess(req)
	if err != nil {
		return nil, err
	}
	pl, err := pipeline.Compile(req.GetPipeline())
	if err != nil {
		return nil, invalid("pipeline", err.Error())
	}
	ds, err := p.s.open(ctx, req.GetUrl(), shuffle.Format(req.GetFormat()))
	if err != nil {
		return nil, err
	}
	if why := wireOf(ds).noPipeline(ds); why != "" {
		return nil, invalid("url", why)
	}
	resp := &stokerv1.PreprocessResponse{JpegDecoder: pipeline.JPEGDecoder, Results: make([]*stokerv1.PreprocessResult, len(samples))}
	rd := &sampleReader{s: p.s, ds: ds, whole: map[int]*cache.Ref{}}
	defer rd.release()
	var inputs []pipeline.Input
	var at []int // at[k]: the result of inputs[k]
	for i, sm := range samples {
		resp.Results[i] = &stokerv1.PreprocessResult{}
		in, err := rd.read(ctx, sm)
		if err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			resp.Results[i].Error = err.Error()
			continue
		}
		inputs = append(inputs, in)
		at = append(at, i)
	}
	if len(inputs) == 0 {
		return resp, nil
	}
	b, err := pl.Masking().Prepare(req.GetEpoch(), inputs)
	if err != nil {
		return nil, pipelineStatus(err)
	}
	if b.Size() > maxPreprocessBytes {
		return nil, status.Errorf(codes.ResourceExhausted, "preprocess: the samples' outputs take %d bytes, over %d: ask for fewer at once", b.Size(), maxPreprocessBytes)
	}
	// The rows count against the bytes held for streams (--max-shm), as a
	// TCP pipeline stream's buffer does: past them the caller does the
	// samples itself.
	release, err := p.s.limits.acquire(ctx, 0, int64(b.Size()))
	if err != nil {
		return nil, err
	}
	defer release()
	dst := make([]byte, b.Size())
	if err := p.s.ready.get().Run(ctx, b, dst); err != nil {
		return nil, pipelineStatus(err)
	}
	for _, t := range b.Outputs() {
		tp := tensorProto(t, 0, 0)
		tp.Rows = 0
		resp.Tensors = append(resp.Tensors, tp)
	}
	errs := b.Errors()
	for k, i := range at {
		r := resp.Results[i]
		r.Key = b.Key(k)
		if errs[k] != nil {
			r.Error = errs[k].Error()
			continue
		}
		r.Rows = b.SampleRows(k, dst)
	}
	p.s.ready.served.Add(uint64(len(inputs)))
	return resp, nil
}

// sampleReader reads samples' fields on the node that owns their
// shards: a sample's bytes from the cache when they are there, else its
// shard whole, read once (from storage if need be) and held for the
// request.
type sampleReader struct {
	s     *Server
	ds    *dataset.Dataset
	whole map[int]*cache.Ref // shards read whole
	held  []*cache.Ref
}

func (rd *sampleReader) release() {
	for _, r := range rd.held {
		r.Release()
	}
}

// read is a sample's input; an error is the sample's, not the request's
// (unless ctx ended).
func (rd *sampleReader) read(ctx context.Context, sm preprocessSample) (pipeline.Input, error) {
	ds := rd.ds
	if sm.shard >= len(ds.Manifest.Shards) {
		return pipeline.Input{}, fmt.Errorf("shard %d of a dataset of %d", sm.shard, len(ds.Manifest.Shards))
	}
	o := ds.Object(sm.shard)
	if o.ETag != sm.etag {
		return pipeline.Input{}, fmt.Errorf("shard %d (%s) has ETag %q here, %q in the request", sm.shard, o.URL, o.ETag, sm.etag)
	}
	x, err := ds.ShardIndex(ctx, sm.shard)
	if err != nil {
		return pipeline.Input{}, err
	}
	j := sm.sample
	if j >= x.Len() {
		return pipeline.Input{}, fmt.Errorf("sample %d of shard %d, indexed with %d", j, sm.shard, x.Len())
	}
	lo, hi := x.Span(j)
	var base []byte
	var baseOff int64
	if r, ok := rd.whole[sm.shard]; ok {
		base = r.Bytes()
	} else {
		r, _, err := rd.s.cache.AcquireRange(ds.Key(sm.shard), lo, hi-lo)
		if err != nil {
			return pipeline.Input{}, err
		}
		if r != nil {
			rd.held = append(rd.held, r)
			base, baseOff = r.Bytes(), lo
		} else {
			if r, err = rd.s.shards.GetLocal(ctx, o); err != nil {
				return pipeline.Input{}, err
			}
			rd.held = append(rd.held, r)
			rd.whole[sm.shard] = r
			base = r.Bytes()
		}
	}
	fields, err := prefetch.SampleFields(o.URL, x, j, base, baseOff)
	if err != nil {
		return pipeline.Input{}, err
	}
	return pipeline.Input{Key: x.Key(j), Object: o.URL, Position: sm.position, Fields: pipelineFields(fields)}, nil
}

// offloadJob is one Preprocess call: samples (indexes in the step) of
// shards one owner holds.
type offloadJob struct {
	owner, addr string
	idx         []int
}

// runAnywhere runs a step's batch with each sample preprocessed by the
// owner of its shard, in parallel with the samples this node does, and
// does here any sample an owner did not. The result is what
// pool.Run(ctx, b, dst) gives.
func (l *loader) runAnywhere(ctx context.Context, r *readyStream, ds *dataset.Dataset, b *pipeline.Batch,
	dst []byte, inputs []pipeline.Input, refs []shuffle.Ref, epoch uint64, fetch func(i int) ([]pipeline.Field, error)) error {
	node := l.s.cfg.Cluster
	jobs := l.offloadJobs(node, ds, b, refs)
	n := b.Len()
	local := make([]bool, n) // run here at once: not sent, and the bytes are here
	sentTo := make([]bool, n)
	for _, j := range jobs {
		for _, i := range j.idx {
			sentTo[i] = true
		}
	}
	for i := range local {
		local[i] = !sentTo[i] && !(b.Deferred(i) && b.Errors()[i] == nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make([]bool, n) // set by the calls, each its own samples
	var wg sync.WaitGroup
	sems := map[string]chan struct{}{}
	for _, j := range jobs {
		sem := sems[j.owner]
		if sem == nil {
			sem = make(chan struct{}, preprocessInFlight)
			sems[j.owner] = sem
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			l.offload(ctx, r, ds, b, dst, inputs, refs, epoch, j, done)
		})
	}
	err := r.pool.RunSamples(ctx, b, dst, local)
	if err != nil && !pipeline.IsSampleError(err) {
		cancel() // the stream fails: no use waiting for the owners
	}
	wg.Wait() // the calls write into dst: none may outlive the step
	fallback := make([]bool, n)
	sent, back := 0, 0
	for i := range n {
		switch {
		case local[i]:
		case done[i]:
			sent++
		default:
			fallback[i] = true
			if sentTo[i] {
				back++
			}
		}
	}
	l.s.ready.sent.Add(uint64(sent))
	l.s.ready.fallbacks.Add(uint64(back))
	if err != nil && !pipeline.IsSampleError(err) {
		return err
	}
	// The samples whose bytes were not read here (their owner was to do
	// them) are read now; a sample that fails its reading fails the
	// stream before any that fails its run, as in Prepare then Run.
	var fillErr error
	for i := range n {
		if !fallback[i] || !b.Deferred(i) {
			continue
		}
		fields, err := fetch(i)
		if err != nil {
			return err
		}
		if err := b.Fill(i, fields); err != nil && fillErr == nil {
			fillErr = err
		}
	}
	if fillErr != nil {
		return fillErr
	}
	ferr := r.pool.RunSamples(ctx, b, dst, fallback)
	return firstSampleError(err, ferr)
}

// firstSampleError is the error of the two runs of a step that Run alone
// would have returned: the earlier sample's when both are a sample's.
func firstSampleError(a, b error) error {
	var sa, sb *pipeline.SampleError
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case errors.As(a, &sa) && errors.As(b, &sb) && sb.Position < sa.Position:
		return b
	}
	return a
}

// offloadJobs groups the step's samples by the owner of their shard,
// leaving out those this node owns and those masked in Prepare, in calls
// of at most maxPreprocessSamples samples and maxPreprocessBytes of rows.
func (l *loader) offloadJobs(node *cluster.Node, ds *dataset.Dataset, b *pipeline.Batch, refs []shuffle.Ref) []offloadJob {
	if node == nil {
		return nil
	}
	outs := len(b.Outputs())
	owners := map[int32]cluster.Member{} // by shard, for this step: ownership is looked up once a shard
	var jobs []offloadJob
	open := map[string]int{} // owner: index of its job being filled
	bytes := map[string]int{}
	errs := b.Errors()
	for i, ref := range refs {
		if errs[i] != nil {
			continue
		}
		m, seen := owners[ref.Shard]
		if !seen {
			m, _ = remoteOwner(node, ds.Object(int(ref.Shard)))
			owners[ref.Shard] = m
		}
		if m.Name == "" { // this node's, or no owner to ask
			continue
		}
		rb := b.RowBytes(i)
		if rb > maxPreprocessBytes/2 { // leaves room for alignment: done here
			continue
		}
		k, ok := open[m.Name]
		if !ok || len(jobs[k].idx) >= maxPreprocessSamples || bytes[m.Name]+rb+outs*64 > maxPreprocessBytes {
			jobs = append(jobs, offloadJob{owner: m.Name, addr: m.Meta.GRPCAddr})
			k = len(jobs) - 1
			open[m.Name], bytes[m.Name] = k, 0
		}
		jobs[k].idx = append(jobs[k].idx, i)
		bytes[m.Name] += rb
	}
	return jobs
}

// remoteOwner is the owner of o's shard when it is another live node
// that can be asked (it publishes a gRPC address); false when this node
// owns it or is alone.
func remoteOwner(node *cluster.Node, o storage.Object) (cluster.Member, bool) {
	m, ok := node.Owner(cluster.ShardKey(o))
	if !ok || m.Name == node.Name() || m.Meta.GRPCAddr == "" {
		return cluster.Member{}, false
	}
	return m, true
}

// offload makes one Preprocess call and puts the rows it gets into dst,
// marking those samples done; any failure leaves its samples to be done
// here.
func (l *loader) offload(ctx context.Context, r *readyStream, ds *dataset.Dataset, b *pipeline.Batch, dst []byte,
	inputs []pipeline.Input, refs []shuffle.Ref, epoch uint64, j offloadJob, done []bool) {
	req := &stokerv1.PreprocessRequest{Url: r.url, Format: r.format, Pipeline: r.spec, Epoch: epoch,
		Samples: make([]*stokerv1.PreprocessSample, len(j.idx))}
	for k, i := range j.idx {
		ref := refs[i]
		req.Samples[k] = &stokerv1.PreprocessSample{Shard: uint32(ref.Shard), Etag: ds.Manifest.Shards[ref.Shard].ETag, Sample: uint32(ref.Sample), Position: uint64(inputs[i].Position)}
	}
	conn, err := l.s.peers.Conn(j.addr)
	if err != nil {
		l.s.log.Debug("preprocess: no connection", "owner", j.owner, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, preprocessTimeout)
	defer cancel()
	resp, err := stokerv1.NewPeerClient(conn).Preprocess(ctx, req)
	if err != nil {
		l.s.log.Debug("preprocess: owner failed, done here", "owner", j.owner, "samples", len(j.idx), "err", err)
		return
	}
	if resp.GetJpegDecoder() != pipeline.JPEGDecoder || len(resp.GetResults()) != len(j.idx) || !sameOutputs(resp.GetTensors(), b.Outputs()) {
		l.s.log.Debug("preprocess: owner's answer does not match this node's batch, done here", "owner", j.owner,
			"decoder", resp.GetJpegDecoder(), "results", len(resp.GetResults()), "samples", len(j.idx))
		return
	}
	for k, i := range j.idx {
		res := resp.GetResults()[k]
		if res.GetError() != "" || res.GetKey() != inputs[i].Key {
			continue
		}
		done[i] = b.PutRows(i, res.GetRows(), dst)
	}
}

// sameOutputs says whether an owner's tensors are this batch's: the same
// names, dtypes and per-sample shapes, in the same order.
func sameOutputs(got []*stokerv1.Tensor, want []pipeline.Tensor) bool {
	if len(got) != len(want) {
		return false
	}
	for k, t := range want {
		g := got[k]
		if g.GetName() != t.Name || g.GetDtype() != t.DType || len(g.GetShape()) != len(t.Shape) {
			return false
		}
		for d := 1; d < len(t.Shape); d++ { // the first is the rows
			if g.GetShape()[d] != uint64(t.Shape[d]) {
				return false
			}
		}
	}
	return true
}
