package server

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// The Peer service checks every number a caller sends before it allocates
// or slices: a range whose end overflows used to slice out of bounds, a
// size of 2^62 to be allocated whole, and both took the server down.
func TestPeerRequestsChecked(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 4, SampleSize: 256, Seed: 9}, nil)
	ctx := context.Background()
	conn := dialRaw(t, h.addr)
	ds, err := stokerv1.NewLoaderClient(conn).OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: h.url})
	if err != nil {
		t.Fatal(err)
	}
	sh := ds.GetDataset().GetShards()[0]
	peer := stokerv1.NewPeerClient(conn)
	read := func(req *stokerv1.ReadShardRequest) (int, error) {
		st, err := peer.ReadShard(ctx, req)
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n += len(m.GetData())
		}
	}
	good := func() *stokerv1.ReadShardRequest {
		return &stokerv1.ReadShardRequest{Object: sh.GetObject(), Etag: sh.GetEtag(), Size: sh.GetSize()}
	}
	for name, mutate := range map[string]func(*stokerv1.ReadShardRequest){
		"range end overflows": func(r *stokerv1.ReadShardRequest) { r.Offset, r.Length = 1, math.MaxInt64 },
		"negative offset":     func(r *stokerv1.ReadShardRequest) { r.Offset = -1 },
		"offset past the end": func(r *stokerv1.ReadShardRequest) { r.Offset = math.MaxInt64 },
		"size 2^62":           func(r *stokerv1.ReadShardRequest) { r.Size, r.Etag = 1<<62, "other" },
		"negative size":       func(r *stokerv1.ReadShardRequest) { r.Size = -5 },
		"unit past the end":   func(r *stokerv1.ReadShardRequest) { r.UnitOffset, r.UnitLength = math.MaxInt64, 10 },
		"negative unit":       func(r *stokerv1.ReadShardRequest) { r.UnitOffset, r.UnitLength = -3, 10 },
		"no object":           func(r *stokerv1.ReadShardRequest) { r.Object = "" },
	} {
		req := good()
		mutate(req)
		if _, err := read(req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ReadShard with %s: %v, want InvalidArgument", name, err)
		}
	}
	_, err = peer.Warm(ctx, &stokerv1.WarmRequest{HintId: "h", Shards: []*stokerv1.Shard{{Object: sh.GetObject(), Size: 1 << 62, Etag: "x"}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Warm of a 2^62-byte shard: %v, want InvalidArgument", err)
	}
	_, err = stokerv1.NewLoaderClient(conn).Prefetch(ctx, &stokerv1.PrefetchRequest{Url: h.url, Epochs: make([]uint64, maxHintEpochs+1)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Prefetch of %d epochs: %v, want InvalidArgument", maxHintEpochs+1, err)
	}
	// Still serving, and a good range reads whole.
	req := good()
	req.Offset, req.Length = 10, 100
	if n, err := read(req); err != nil || n != 100 {
		t.Fatalf("a good range after the bad ones: %d bytes, %v", n, err)
	}
}
