package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// loader implements the Loader gRPC service.
type loader struct {
	stokerv1.UnimplementedLoaderServer
	s *Server
}

func (l *loader) OpenDataset(ctx context.Context, req *stokerv1.OpenDatasetRequest) (*stokerv1.OpenDatasetResponse, error) {
	if req.GetUrl() == "" {
		return nil, invalid("url", "is empty")
	}
	ds, err := l.s.open(ctx, req.GetUrl(), shuffle.Format(req.GetFormat()))
	if err != nil {
		return nil, err
	}
	fields, err := wireOf(ds).fields(ctx, ds, req.GetFields())
	if err != nil {
		return nil, err
	}
	out := datasetProto(ds) // after fields: their loads counted the shards
	for _, f := range fields {
		out.Fields = append(out.Fields, &stokerv1.FieldInfo{Name: f.Name, Samples: uint64(f.Samples)})
	}
	return &stokerv1.OpenDatasetResponse{Dataset: out}, nil
}

func datasetProto(ds *dataset.Dataset) *stokerv1.Dataset {
	m := ds.Manifest
	out := &stokerv1.Dataset{Url: m.URL, Format: string(m.Format), FromStoredManifest: ds.FromStored(), CountsFrom: ds.CountsFrom}
	for i, s := range m.Shards {
		n, _ := ds.Count(i)
		sh := shardProto(ds.Object(i))
		sh.Samples, sh.Part = uint64(max(n, 0)), uint32(s.Part)
		out.Shards = append(out.Shards, sh)
		out.TotalBytes += uint64(s.Size)
	}
	n, counted := ds.NumSamples()
	out.NumSamples, out.Counted = uint64(n), counted
	wireOf(ds).describe(out)
	return out
}

func (l *loader) Stats(ctx context.Context, _ *stokerv1.StatsRequest) (*stokerv1.StatsResponse, error) {
	st := l.s.Stats()
	if localPeer(ctx) {
		st.Host.UnixSocket = l.s.cfg.Shm.Socket
	}
	return st, nil
}

func (l *loader) StreamBatches(req *stokerv1.StreamBatchesRequest, stream stokerv1.Loader_StreamBatchesServer) error {
	ctx := stream.Context()
	b, settings, start, err := parseStreamRequest(req)
	if err != nil {
		return err
	}
	ds, err := l.s.open(ctx, req.GetUrl(), shuffle.Format(req.GetFormat()))
	if err != nil {
		return err
	}
	wire := wireOf(ds)
	if err := wire.checkColumns(req, ds); err != nil {
		return err
	}
	plan, err := l.s.plans.get(ds, settings)
	if err != nil {
		return toStatus(err)
	}
	ps := l.s.prefetcher.Open(ds, plan, b, start)
	defer ps.Close()
	tr := l.s.track(ctx, req, ps, start)
	defer tr.close()
	l.s.hints.nextEpoch(ds, settings) // after Open: the kept subset counts this dataset
	if err := ps.Ensure(ctx, start); err != nil {
		return toStatus(err)
	}
	if total, complete := ps.Total(); complete && start > total {
		return invalid("cursor.position", fmt.Sprintf("%d is past the end of the epoch (%d samples)", start, total))
	}
	return wire.stream(l, req, stream, ds, plan, ps, b, settings, start, tr)
}

// streamSamples sends each step's samples with their fields (or, with a
// pipeline, its tensors).
func (l *loader) streamSamples(req *stokerv1.StreamBatchesRequest, stream stokerv1.Loader_StreamBatchesServer,
	ds *dataset.Dataset, plan *shuffle.Plan, ps *prefetch.Stream, b shuffle.Batching, settings shuffle.Settings, start int, tr *streamTracker) error {
	ctx := stream.Context()
	ready, err := l.openReady(req, ds) // nil: no pipeline
	if err != nil {
		return err
	}
	defer ready.close()
	if ready != nil && ready.elsewhere != nil {
		ps.SetElsewhere(ready.elsewhere) // their owners read and preprocess them: none fetched ahead here
	}
	l.s.log.Debug("stream open", "url", req.GetUrl(), "epoch", req.GetEpoch(), "rank", b.Rank, "world", b.WorldSize, "start", start, "shm", req.GetShm())
	if req.GetPacked() && ready == nil { // a pipeline's samples have no fields to pack
		stream = packedStream{stream}
	}
	var sh *shmStream // nil: bytes travel in the messages
	if req.GetShm() {
		if sh, err = l.openShm(ctx, req, ds); err != nil {
			return err
		}
		defer sh.close()
	} else if req.GetGds() {
		return invalid("gds", "needs shm (extents are leased like shared memory)")
	}
	step := b.StepSize()
	for k := 0; ; k++ {
		t := tr.begin()
		lo, hi, after, ok, err := ps.Step(ctx, k)
		if err != nil {
			return toStatus(err)
		}
		if !ok {
			break
		}
		ps.Advance(k)
		samples := make([]*prefetch.SampleData, 0, hi-lo)
		for pos := lo; pos < hi; pos++ {
			d, err := sh.unread(ctx, ps, plan, pos, ready == nil) // a shard on disk, sent as extents: not read
			if d == nil && err == nil {
				d, err = ready.sample(ctx, ps, plan, pos)
			}
			if err != nil {
				return toStatus(err)
			}
			samples = append(samples, d)
		}
		// Read: the step waits on the reader now, not on storage.
		ps.Deliver()
		if ready != nil { // decode and augment: tensors go instead of the bytes
			if err := l.sendReady(stream, ready, sh, ds, ps, samples, lo, settings.Epoch, uint64((start+k*step)/step), uint32(b.Rank), uint64(after)); err != nil {
				return err
			}
			ps.EndStep()
			continue
		}
		if err := sh.checkStep(samples); err != nil {
			return err
		}
		tr.fetched()
		if err := l.sendStep(stream, sh, ds, samples, lo, settings.Epoch, uint64((start+k*step)/step), uint32(b.Rank), uint64(after)); err != nil {
			return err
		}
		// Sent: gRPC has encoded the bytes, or shm copied them to the region
		// (or pinned what it hands out in place).
		ps.EndStep()
		tr.sent(t, len(samples), sampleBytes(samples), after)
	}
	return sh.drain(ctx)
}

// sendStep sends one step's samples (positions from lo on) as messages of
// about MaxPartBytes, each under gRPC's send limit when the bytes travel in
// it; the last is final and carries the cursor.
func (l *loader) sendStep(stream stokerv1.Loader_StreamBatchesServer, sh *shmStream, ds *dataset.Dataset, samples []*prefetch.SampleData,
	lo int, epoch, step uint64, rank uint32, after uint64) error {
	newMsg := func() *stokerv1.StreamBatchesResponse {
		return &stokerv1.StreamBatchesResponse{Epoch: epoch, Step: step, Rank: rank}
	}
	msg, part, partBytes := newMsg(), samples[:0:0], 0
	fit := msgFit{limit: l.s.cfg.MaxMessageBytes}
	for i, d := range samples {
		sp := sampleProto(d, lo+i)
		if sh == nil { // the bytes go in the message: keep it under gRPC's limit
			sendFirst, err := fit.add(ds.Manifest.Shards[d.Ref.Shard].Object, sp)
			if err != nil {
				return err
			}
			if sendFirst {
				if err := l.sendSamples(stream, sh, msg, part, partBytes); err != nil {
					return err
				}
				msg, part, partBytes = newMsg(), part[len(part):], 0
			}
		}
		msg.Samples = append(msg.Samples, sp)
		part = append(part, d)
		partBytes += sampleSize(d)
		if partBytes >= l.s.cfg.MaxPartBytes && i+1 < len(samples) {
			if err := l.sendSamples(stream, sh, msg, part, partBytes); err != nil {
				return err
			}
			msg, part, partBytes = newMsg(), part[len(part):], 0
			fit.reset()
		}
	}
	msg.Final = true
	msg.Cursor = &stokerv1.Cursor{Epoch: epoch, Position: after, PlanVersion: shuffle.PlanVersion}
	return l.sendSamples(stream, sh, msg, part, partBytes)
}

// sampleProto is a sample's message: its fields point at the cached bytes
// (no copy).
func sampleProto(d *prefetch.SampleData, pos int) *stokerv1.Sample {
	s := &stokerv1.Sample{Key: d.Key, Position: uint64(pos), Shard: uint32(d.Ref.Shard), Fields: make([]*stokerv1.Field, len(d.Fields))}
	for i, f := range d.Fields {
		s.Fields[i] = &stokerv1.Field{Name: f.Name, Data: f.Data}
	}
	return s
}

// send sends msg and counts its samples and payload bytes as served.
func (l *loader) send(stream stokerv1.Loader_StreamBatchesServer, msg *stokerv1.StreamBatchesResponse, samples, n int) error {
	if err := stream.Send(msg); err != nil {
		return err
	}
	l.s.metrics.samples.Add(uint64(samples))
	l.s.metrics.bytes.Add(uint64(n))
	return nil
}

// Bounds on integers from the wire. A plan holds a Ref per sample, so no
// epoch comes near maxPosition; maxBatchSize and maxWorldSize keep a step
// (batch size times world size) and every position computed from a start
// below maxPosition far from overflowing an int.
const (
	maxPosition  = 1 << 48 // samples in an epoch
	maxBatchSize = 1 << 24 // samples in one rank's batch
	maxWorldSize = 1 << 20 // ranks
)

// parseStreamRequest checks a request and names the first bad field. Every
// integer is checked before it is converted to an int.
func parseStreamRequest(req *stokerv1.StreamBatchesRequest) (shuffle.Batching, shuffle.Settings, int, error) {
	var b shuffle.Batching
	var s shuffle.Settings
	world := req.GetWorldSize()
	if world == 0 {
		world = 1
	}
	switch {
	case req.GetUrl() == "":
		return b, s, 0, invalid("url", "is empty")
	case req.GetBatchSize() == 0:
		return b, s, 0, invalid("batch_size", "must be positive")
	case req.GetBatchSize() > maxBatchSize:
		return b, s, 0, invalid("batch_size", fmt.Sprintf("%d is over the limit of %d samples per rank", req.GetBatchSize(), maxBatchSize))
	case world > maxWorldSize:
		return b, s, 0, invalid("world_size", fmt.Sprintf("%d is over the limit of %d ranks", world, maxWorldSize))
	case req.GetRank() >= world:
		return b, s, 0, invalid("rank", fmt.Sprintf("%d is outside world_size %d", req.GetRank(), world))
	case stokerv1.PreprocessOn_name[int32(req.GetPreprocessOn())] == "":
		return b, s, 0, invalid("preprocess_on", fmt.Sprintf("%d is not LOCAL (%d) or ANY (%d)", req.GetPreprocessOn(),
			stokerv1.PreprocessOn_PREPROCESS_ON_LOCAL, stokerv1.PreprocessOn_PREPROCESS_ON_ANY))
	}
	b = shuffle.Batching{Rank: int(req.GetRank()), WorldSize: int(world), BatchSize: int(req.GetBatchSize()), DropLast: req.GetDropLast()}
	s = shuffle.Settings{Seed: req.GetSeed(), Epoch: req.GetEpoch(), Window: int(req.GetShuffleWindow()), NoShuffle: req.GetNoShuffle()}
	start := 0
	if c := req.GetCursor(); c != nil {
		if c.GetEpoch() != req.GetEpoch() {
			return b, s, 0, status.Errorf(codes.InvalidArgument, "cursor.epoch: %d does not match epoch %d", c.GetEpoch(), req.GetEpoch())
		}
		if v := c.GetPlanVersion(); v != 0 && v != shuffle.PlanVersion {
			return b, s, 0, status.Errorf(codes.FailedPrecondition,
				"cursor: made by plan version %d, and this server plans epochs with version %d, whose order differs: the cursor cannot resume this epoch (start it again, or resume with a server of plan version %d)", v, shuffle.PlanVersion, v)
		}
		if c.GetPosition() > maxPosition {
			return b, s, 0, invalid("cursor.position", fmt.Sprintf("%d is past the end of any epoch", c.GetPosition()))
		}
		start = int(c.GetPosition())
	}
	return b, s, start, nil
}
