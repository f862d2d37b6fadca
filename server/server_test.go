package server

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A batch far larger than gRPC's default 4 MiB limit arrives whole, split
// into parts of the same step.
func TestLargeBatchesArriveInParts(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 12, SampleSize: 1 << 20, Seed: 3}, func(c *Config) { c.MaxPartBytes = 3 << 20 })
	ctx := context.Background()
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var parts, finals, samples int
	for {
		m, err := st.Recv()
		if err != nil {
			if status.Code(err) != codes.OK && err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		parts++
		samples += len(m.GetSamples())
		if m.GetFinal() {
			finals++
			if m.GetCursor() == nil {
				t.Fatal("final part without cursor")
			}
		} else if m.GetCursor() != nil {
			t.Fatal("cursor on a non-final part")
		}
	}
	if samples != 24 || finals != 3 || parts <= finals {
		t.Fatalf("%d samples in %d parts with %d finals; want 24 samples, 3 steps, more parts than steps", samples, parts, finals)
	}
	// The client library joins the parts back into batches.
	n := 0
	for b, err := range h.client.Batches(ctx, stoker.Epoch{URL: h.url, BatchSize: 10, Seed: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		if want := min(10, 24-n); len(b.Samples) != want {
			t.Fatalf("batch at %d has %d samples, want %d", n, len(b.Samples), want)
		}
		n += len(b.Samples)
	}
}

// drop_last stops every rank after the last full step; without it ranks
// may get short or empty last batches.
func TestDropLastAndShortBatches(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 3, PerShard: 7, SampleSize: 100, Seed: 1}, nil)
	for _, tc := range []struct {
		dropLast bool
		want     [3][]int // batch sizes per rank
	}{
		{false, [3][]int{{4, 4}, {4, 4}, {4, 1}}}, // 21 samples: steps of 12 and 9
		{true, [3][]int{{4}, {4}, {4}}},
	} {
		for r := range 3 {
			var sizes []int
			for b, err := range h.client.Batches(context.Background(), stoker.Epoch{URL: h.url, BatchSize: 4, Rank: r, WorldSize: 3, DropLast: tc.dropLast}) {
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(b.Samples))
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.want[r]) {
				t.Errorf("drop_last %v rank %d: batch sizes %v, want %v", tc.dropLast, r, sizes, tc.want[r])
			}
		}
	}
}

func TestStatsCountServedSamples(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 5, SampleSize: 1000, Seed: 1}, nil)
	ctx := context.Background()
	for _, err := range h.client.Batches(ctx, stoker.Epoch{URL: h.url, BatchSize: 3}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := h.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetSamplesServed() != 10 || st.GetActiveStreams() != 0 || st.GetMemoryHits() == 0 {
		t.Fatalf("stats: %v", st)
	}
}

// A rank whose share of the short last step is empty still gets an empty
// final batch with the cursor, so every rank sees the same steps.
func TestEmptyLastBatch(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 7, SampleSize: 10, Seed: 1}, nil)
	var sizes []int
	var cursors []uint64
	for b, err := range h.client.Batches(context.Background(), stoker.Epoch{URL: h.url, BatchSize: 4, Rank: 2, WorldSize: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		sizes, cursors = append(sizes, len(b.Samples)), append(cursors, b.Cursor)
	}
	if fmt.Sprint(sizes) != "[0]" || fmt.Sprint(cursors) != "[7]" {
		t.Fatalf("rank 2 of 3, 7 samples, batch 4: sizes %v cursors %v; want [0] and [7]", sizes, cursors)
	}
}
