package server

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stoker-data/stoker/prefetch"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// msgHeaderBytes bounds what a stream message holds besides its samples:
// epoch, step, rank, final and the cursor take a few dozen bytes.
const msgHeaderBytes = 1 << 10

// sampleBytes is what sample s adds to a stream message: its encoding and
// its field's tag and length.
func sampleBytes(s *stokerv1.Sample) int { return proto.Size(s) + 16 }

// checkSampleFits returns ResourceExhausted naming the shard, the sample
// and its largest field when a sample of size bytes (sampleBytes) cannot
// go in one message under the gRPC send limit, before gRPC would refuse it
// with "message larger than max" naming nothing.
func checkSampleFits(ds *prefetch.Dataset, ref shuffle.Ref, s *stokerv1.Sample, size, limit int) error {
	if size+msgHeaderBytes <= limit {
		return nil
	}
	var big *stokerv1.Field
	for _, f := range s.GetFields() {
		if big == nil || len(f.GetData()) > len(big.GetData()) {
			big = f
		}
	}
	return status.Errorf(codes.ResourceExhausted,
		"shard %s, sample %q, field %q: %d bytes (the sample %d) do not fit the largest stream message, %d bytes (gRPC send limit): read this dataset over shared memory, or give the server a larger Config.MaxMessageBytes",
		ds.Manifest.Shards[ref.Shard].Object, s.GetKey(), big.GetName(), len(big.GetData()), size, limit)
}
