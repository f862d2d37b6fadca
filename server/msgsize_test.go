package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// A sample that cannot fit one message under the gRPC send limit fails
// with ResourceExhausted naming the shard, the sample and the field,
// where gRPC itself says only "message larger than max".
func TestSampleLargerThanMessage(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 3 << 20, Seed: 5}, func(c *Config) {
		c.MaxPartBytes, c.MaxMessageBytes = 1<<20, 2<<20
	})
	var err error
	for _, err = range h.client.Batches(context.Background(), stoker.Epoch{URL: h.url, BatchSize: 1, NoShuffle: true}) {
		if err != nil {
			break
		}
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	for _, want := range []string{"train-000000.tar", `sample "000000"`, `field "img.bin"`, "3145728 bytes", "2097152"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// Samples that each fit a message but not together are sent in parts,
// even below MaxPartBytes: the epoch arrives whole.
func TestSamplesSplitToFitMessages(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 4, SampleSize: 3 << 19, Seed: 6}, func(c *Config) {
		c.MaxPartBytes, c.MaxMessageBytes = 8<<20, 4<<20 // three 1.5 MiB samples pass the part size but not the limit
	})
	n := 0
	for b, err := range h.client.Batches(context.Background(), stoker.Epoch{URL: h.url, BatchSize: 8, Seed: 1}) {
		if err != nil {
			t.Fatalf("after %d samples: %v", n, err)
		}
		n += len(b.Samples)
	}
	if n != 8 {
		t.Fatalf("%d samples, want 8", n)
	}
}
