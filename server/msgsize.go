package server

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// msgHeaderBytes bounds what a stream message holds besides its samples:
// epoch, step, rank, final and the cursor take a few dozen bytes.
const msgHeaderBytes = 1 << 10

// msgFit keeps a stream message under gRPC's send limit, so that no send
// fails with "message larger than max", which names nothing. Not safe for
// concurrent use: one per stream.
type msgFit struct {
	limit int // the gRPC send limit (Config.MaxMessageBytes)
	used  int // encoded bytes of the samples in the message so far
}

// add counts sample s of shard (its URL, for errors) into the message. It
// reports whether the message so far must be sent first, s then starting
// the next one; and it fails with ResourceExhausted naming the shard, the
// sample and its largest field when s fits no message at all.
func (m *msgFit) add(shard string, s *stokerv1.Sample) (sendFirst bool, err error) {
	size := proto.Size(s) + 16 // and the sample's own tag and length
	if size+msgHeaderBytes > m.limit {
		var big *stokerv1.Field
		for _, f := range s.GetFields() {
			if big == nil || len(f.GetData()) > len(big.GetData()) {
				big = f
			}
		}
		return false, status.Errorf(codes.ResourceExhausted,
			"shard %s, sample %q, field %q: %d bytes (the sample %d) do not fit the largest stream message, %d bytes (gRPC send limit): read this dataset over shared memory, or give the server a larger Config.MaxMessageBytes",
			shard, s.GetKey(), big.GetName(), len(big.GetData()), size, m.limit)
	}
	if m.used > 0 && m.used+size+msgHeaderBytes > m.limit {
		m.used = size
		return true, nil
	}
	m.used += size
	return false, nil
}

// reset starts a new message.
func (m *msgFit) reset() { m.used = 0 }
