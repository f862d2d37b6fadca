package server

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// Integers from the wire that no epoch can hold are refused with
// InvalidArgument naming the field, and the server goes on serving: a
// cursor of 2^64-1 used to become position -1 and panic in the plan, one of
// 2^63 to become a negative position read as an empty epoch, and a batch
// times a world size past 2^63 to wrap.
func TestWireIntegersRefused(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 3, PerShard: 10, SampleSize: 64, Seed: 2}, nil)
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	ctx := context.Background()
	for _, tc := range []struct {
		name, field string
		req         *stokerv1.StreamBatchesRequest
	}{
		{"cursor 2^64-1", "cursor.position", &stokerv1.StreamBatchesRequest{BatchSize: 4, Cursor: &stokerv1.Cursor{Position: math.MaxUint64}}},
		{"cursor 2^63", "cursor.position", &stokerv1.StreamBatchesRequest{BatchSize: 4, Cursor: &stokerv1.Cursor{Position: 1 << 63}}},
		{"cursor past the epoch", "cursor.position", &stokerv1.StreamBatchesRequest{BatchSize: 4, Cursor: &stokerv1.Cursor{Position: 31}}},
		{"batch 2^32-1 in a world of 2^32-1", "batch_size", &stokerv1.StreamBatchesRequest{BatchSize: math.MaxUint32, WorldSize: math.MaxUint32}},
		{"world 2^32-1", "world_size", &stokerv1.StreamBatchesRequest{BatchSize: 4, WorldSize: math.MaxUint32, Rank: 7}},
		{"rank outside the world", "rank", &stokerv1.StreamBatchesRequest{BatchSize: 4, WorldSize: 2, Rank: 2}},
		{"zero batch", "batch_size", &stokerv1.StreamBatchesRequest{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Url = h.url
			err := streamErr(ctx, api, tc.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if msg := status.Convert(err).Message(); len(msg) < len(tc.field) || msg[:len(tc.field)] != tc.field {
				t.Errorf("message %q does not start with the field %s", msg, tc.field)
			}
		})
	}
	// Still serving: a whole epoch arrives.
	n := 0
	for b, err := range h.client.Batches(ctx, stoker.Epoch{URL: h.url, BatchSize: 4, Seed: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		n += len(b.Samples)
	}
	if n != 30 {
		t.Fatalf("epoch after the refusals: %d samples, want 30", n)
	}
}

// streamErr opens a stream and returns the error it ends with (nil when it
// ends cleanly).
func streamErr(ctx context.Context, api stokerv1.LoaderClient, req *stokerv1.StreamBatchesRequest) error {
	st, err := api.StreamBatches(ctx, req)
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
