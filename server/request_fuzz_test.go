package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// FuzzParseStreamRequest decodes a StreamBatchesRequest from raw bytes, as
// the server does, and parses it: a request that passes must give batching
// arguments every later step can compute with (no overflow, no negative
// position), and a small plan must be buildable and walkable with them.
// Seeds (testdata/fuzz) include the cursors that crashed the server.
func FuzzParseStreamRequest(f *testing.F) {
	for _, req := range []*stokerv1.StreamBatchesRequest{
		{Url: "s3://b/p/", BatchSize: 32},
		{Url: "s3://b/p/", BatchSize: 8, WorldSize: 4, Rank: 3, ShuffleWindow: 2, Seed: 7, Epoch: 1, Cursor: &stokerv1.Cursor{Epoch: 1, Position: 5}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req stokerv1.StreamBatchesRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		b, s, start, err := parseStreamRequest(&req)
		if err != nil {
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted %v: %v", &req, err)
		}
		if start < 0 || start > maxPosition || b.StepSize() <= 0 {
			t.Fatalf("accepted %v: start %d, step %d", &req, start, b.StepSize())
		}
		for _, total := range []int{0, 1, start, start + 1, maxPosition} {
			steps := b.Steps(total, start)
			if steps < 0 {
				t.Fatalf("total %d start %d: %d steps", total, start, steps)
			}
			for _, k := range []int{0, steps - 1} {
				if k < 0 {
					continue
				}
				lo, hi := b.Batch(total, start, k)
				if lo < 0 || lo > hi || hi > total || b.After(total, start, k) > total {
					t.Fatalf("total %d start %d step %d: batch [%d,%d), after %d", total, start, k, lo, hi, b.After(total, start, k))
				}
			}
		}
		plan, err := shuffle.NewPlan([]int{3, 0, 5, 1}, s)
		if err != nil {
			return // refused: a bad window or count
		}
		total, _ := plan.Total()
		if start > total {
			return // the server refuses it once it knows the epoch's length
		}
		for k := range b.Steps(total, start) {
			lo, hi := b.Batch(total, start, k)
			_ = plan.Slice(lo, hi)
		}
	})
}
