package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/wds"
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
	return &stokerv1.OpenDatasetResponse{Dataset: datasetProto(ds)}, nil
}

func datasetProto(ds *prefetch.Dataset) *stokerv1.Dataset {
	m := ds.Manifest
	out := &stokerv1.Dataset{Url: m.URL, Format: string(m.Format), FromStoredManifest: ds.FromStored}
	for _, s := range m.Shards {
		out.Shards = append(out.Shards, &stokerv1.Shard{Object: s.Object, Size: s.Size, Etag: s.ETag, Samples: uint64(s.Samples)})
		out.NumSamples += uint64(s.Samples)
		out.TotalBytes += uint64(s.Size)
	}
	columnarProto(ds, out)
	return out
}

func (l *loader) Stats(context.Context, *stokerv1.StatsRequest) (*stokerv1.StatsResponse, error) {
	return l.s.Stats(), nil
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
	if ds.Columnar == nil && len(req.GetColumns()) > 0 {
		return invalid("columns", fmt.Sprintf("%q: %s is a WebDataset, whose samples have fields, not columns: leave columns empty", req.GetColumns(), ds.Manifest.URL))
	}
	plan := l.s.plans.get(ds, settings)
	l.s.hints.nextEpoch(ds, settings)
	if start > plan.Len() {
		return invalid("cursor.position", fmt.Sprintf("%d is past the end of the epoch (%d samples)", start, plan.Len()))
	}
	ps := l.s.prefetcher.Open(ds, plan, b, start)
	defer ps.Close()
	if ds.Columnar != nil {
		return l.streamColumnar(req, stream, ds, plan, ps, b, settings, start)
	}
	l.s.log.Debug("stream open", "url", req.GetUrl(), "epoch", req.GetEpoch(), "rank", b.Rank, "world", b.WorldSize, "start", start, "shm", req.GetShm())
	var shm *shmStream // nil: bytes travel in the messages
	if req.GetShm() {
		if shm, err = l.openShm(ctx, req, ds, plan); err != nil {
			return err
		}
		defer shm.close()
	} else if req.GetGds() {
		return invalid("gds", "needs shm (extents are leased like shared memory)")
	}

	total, step := plan.Len(), b.StepSize()
	var held []*prefetch.Ref // this batch's shards, pinned in the cache until it is sent
	defer func() { releaseRefs(held) }()
	for k := range b.Steps(total, start) {
		ps.Advance(k)
		lo, hi := b.Batch(total, start, k)
		if err := shm.checkStep(ds, plan, lo, hi); err != nil {
			return err
		}
		msg := &stokerv1.StreamBatchesResponse{Epoch: settings.Epoch, Step: uint64((start + k*step) / step), Rank: uint32(b.Rank)}
		shards := map[int32][]byte{} // shard bytes used by this batch
		partBytes := 0
		for pos := lo; pos < hi; pos++ {
			ref := plan.At(pos)
			data, ok := shards[ref.Shard]
			if !ok {
				r, err := ps.Shard(ctx, int(ref.Shard))
				if err != nil {
					return toStatus(err)
				}
				held = append(held, r)
				data = r.Bytes()
				shards[ref.Shard] = data
			}
			sample, n, err := buildSample(ds, ref, pos, data)
			if err != nil {
				return toStatus(err)
			}
			msg.Samples = append(msg.Samples, sample)
			partBytes += n
			if partBytes >= l.s.cfg.MaxPartBytes && pos+1 < hi {
				if err := l.sendSamples(stream, shm, msg, partBytes); err != nil {
					return err
				}
				msg = &stokerv1.StreamBatchesResponse{Epoch: msg.Epoch, Step: msg.Step, Rank: msg.Rank}
				partBytes = 0
			}
		}
		msg.Final = true
		msg.Cursor = &stokerv1.Cursor{Epoch: settings.Epoch, Position: uint64(b.After(total, start, k))}
		if err := l.sendSamples(stream, shm, msg, partBytes); err != nil {
			return err
		}
		// Sent: gRPC has encoded the bytes, or shm copied them to the region.
		releaseRefs(held)
		held = held[:0]
	}
	return shm.drain(ctx)
}

// releaseRefs releases every Ref.
func releaseRefs(refs []*prefetch.Ref) {
	for _, r := range refs {
		r.Release()
	}
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

// buildSample slices the sample's fields out of its shard's bytes (no
// copy) and returns it with its payload size.
func buildSample(ds *prefetch.Dataset, ref shuffle.Ref, pos int, data []byte) (*stokerv1.Sample, int, error) {
	idx := ds.Index[ref.Shard][ref.Sample]
	s := &stokerv1.Sample{Key: idx.Key, Position: uint64(pos), Shard: uint32(ref.Shard), Fields: make([]*stokerv1.Field, len(idx.Fields))}
	n := 0
	for i, f := range idx.Fields {
		b, err := wds.FieldData(data, f)
		if err != nil {
			return nil, 0, &prefetch.Error{Op: "read", Object: ds.Manifest.Shards[ref.Shard].Object, Kind: prefetch.ErrCorrupt,
				Err: fmt.Errorf("sample %q field %q: %w", idx.Key, f.Name, err)}
		}
		s.Fields[i] = &stokerv1.Field{Name: f.Name, Data: b}
		n += len(b)
	}
	return s, n, nil
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
	}
	b = shuffle.Batching{Rank: int(req.GetRank()), WorldSize: int(world), BatchSize: int(req.GetBatchSize()), DropLast: req.GetDropLast()}
	s = shuffle.Settings{Seed: req.GetSeed(), Epoch: req.GetEpoch(), Window: int(req.GetShuffleWindow()), NoShuffle: req.GetNoShuffle()}
	start := 0
	if c := req.GetCursor(); c != nil {
		if c.GetEpoch() != req.GetEpoch() {
			return b, s, 0, status.Errorf(codes.InvalidArgument, "cursor.epoch: %d does not match epoch %d", c.GetEpoch(), req.GetEpoch())
		}
		if c.GetPosition() > maxPosition {
			return b, s, 0, invalid("cursor.position", fmt.Sprintf("%d is past the end of any epoch", c.GetPosition()))
		}
		start = int(c.GetPosition())
	}
	return b, s, start, nil
}
