package main

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

const bucket = "datasets"

// env is a running S3 server with the test dataset and a stokerd over it.
type env struct {
	s3     *s3test.Server
	srv    *stokerd
	client *stoker.Client
	want   sampleData
	url    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s3, _, want := startS3Dataset(t)
	srv := startStokerd(t, s3.Env(), t.TempDir())
	return &env{s3: s3, srv: srv, client: dialRetrying(t, srv.grpc), want: want, url: "s3://" + bucket + "/train/"}
}

// startS3Dataset starts an S3 server holding the test dataset's shards in
// bucket (under train/) and returns them with their samples.
func startS3Dataset(t *testing.T) (*s3test.Server, []shardFile, sampleData) {
	t.Helper()
	s3 := s3test.Start(t)
	s3.CreateBucket(t, bucket)
	shards, want := testDataset(t)
	for _, sh := range shards {
		s3.Put(t, bucket, sh.name, sh.data)
	}
	return s3, shards, want
}

// dialRetrying dials addr with opts and quick, patient resumes (a server
// restarts under the tests), and closes the client when the test ends.
func dialRetrying(t *testing.T, addr string, opts ...stoker.Option) *stoker.Client {
	t.Helper()
	c, err := stoker.Dial(addr, append([]stoker.Option{stoker.WithBackoff(10*time.Millisecond, 200*time.Millisecond), stoker.WithRetries(50)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads one rank's epoch and returns its samples in order.
func readAll(t *testing.T, c *stoker.Client, e stoker.Epoch) []*stokerv1.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []*stokerv1.Sample
	for b, err := range c.Batches(ctx, e) {
		if err != nil {
			t.Fatalf("epoch %d rank %d: %v", e.Epoch, e.Rank, err)
		}
		if len(b.Samples) > e.BatchSize {
			t.Fatalf("batch of %d samples > batch size %d", len(b.Samples), e.BatchSize)
		}
		out = append(out, b.Samples...)
	}
	return out
}

// checkSamples checks every sample's bytes against what was written and
// that each key arrives at most once; it returns the keys in order.
func (e *env) checkSamples(t *testing.T, samples []*stokerv1.Sample) []string {
	t.Helper()
	seen := map[string]bool{}
	var keys []string
	for _, s := range samples {
		fields, ok := e.want[s.GetKey()]
		if !ok {
			t.Fatalf("unknown key %q", s.GetKey())
		}
		if seen[s.GetKey()] {
			t.Fatalf("key %q delivered twice", s.GetKey())
		}
		seen[s.GetKey()] = true
		keys = append(keys, s.GetKey())
		if len(s.GetFields()) != len(fields) {
			t.Fatalf("%s: %d fields, want %d", s.GetKey(), len(s.GetFields()), len(fields))
		}
		for _, f := range s.GetFields() {
			if !bytes.Equal(f.GetData(), fields[f.GetName()]) {
				t.Fatalf("%s.%s: %d bytes differ from the %d written", s.GetKey(), f.GetName(), len(f.GetData()), len(fields[f.GetName()]))
			}
		}
	}
	return keys
}

func (e *env) checkEpoch(t *testing.T, samples []*stokerv1.Sample) []string {
	t.Helper()
	keys := e.checkSamples(t, samples)
	if len(keys) != len(e.want) {
		t.Fatalf("epoch delivered %d samples, want %d", len(keys), len(e.want))
	}
	for i, s := range samples {
		if s.GetPosition() != uint64(i) {
			t.Fatalf("sample %d has position %d", i, s.GetPosition())
		}
	}
	return keys
}

func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ds, err := e.client.OpenDataset(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	// No index beside the shards and no stored manifest: the shards are
	// counted as streams reach them, not at the open.
	if len(ds.GetShards()) != 8 || ds.GetCounted() || ds.GetCountsFrom() != "counting" {
		t.Fatalf("dataset: %d shards, counted %v from %q; want 8, false, counting", len(ds.GetShards()), ds.GetCounted(), ds.GetCountsFrom())
	}
	base := stoker.Epoch{URL: e.url, Seed: 7, BatchSize: 16, ShuffleWindow: 3}
	epoch0 := e.checkEpoch(t, readAll(t, e.client, base))
	if ds, err = e.client.OpenDataset(ctx, e.url); err != nil {
		t.Fatal(err)
	}
	if !ds.GetCounted() || ds.GetNumSamples() != uint64(len(e.want)) {
		t.Fatalf("after an epoch: counted %v, %d samples; want true, %d", ds.GetCounted(), ds.GetNumSamples(), len(e.want))
	}

	t.Run("same sequence for world size 4", func(t *testing.T) {
		var mu sync.Mutex
		var all []*stokerv1.Sample
		var wg sync.WaitGroup
		for r := range 4 {
			wg.Go(func() {
				ep := base
				ep.Rank, ep.WorldSize, ep.BatchSize = r, 4, 5
				got := readAll(t, e.client, ep)
				for _, s := range got {
					if (s.GetPosition()/5)%4 != uint64(r) {
						t.Errorf("rank %d got position %d of another rank", r, s.GetPosition())
					}
				}
				mu.Lock()
				all = append(all, got...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.SortFunc(all, func(a, b *stokerv1.Sample) int { return int(a.GetPosition()) - int(b.GetPosition()) })
		if keys := e.checkEpoch(t, all); !slices.Equal(keys, epoch0) {
			t.Fatal("world size 4 read another sequence than world size 1")
		}
	})

	t.Run("epochs differ and repeat", func(t *testing.T) {
		ep := base
		ep.Epoch = 1
		e1 := e.checkEpoch(t, readAll(t, e.client, ep))
		if slices.Equal(e1, epoch0) {
			t.Fatal("epoch 1 has epoch 0's order")
		}
		if again := e.checkEpoch(t, readAll(t, e.client, base)); !slices.Equal(again, epoch0) {
			t.Fatal("epoch 0 read twice gave two orders")
		}
	})

	t.Run("resume from cursor", func(t *testing.T) {
		for _, stopAfter := range []int{1, 3} {
			var got []*stokerv1.Sample
			var cursor uint64
			n := 0
			for b, err := range e.client.Batches(ctx, base) {
				if err != nil {
					t.Fatal(err)
				}
				got, cursor = append(got, b.Samples...), b.Cursor
				if n++; n == stopAfter {
					break
				}
			}
			rest := base
			rest.Start = cursor
			got = append(got, readAll(t, e.client, rest)...)
			if keys := e.checkEpoch(t, got); !slices.Equal(keys, epoch0) {
				t.Fatalf("resumed after %d batches: order differs", stopAfter)
			}
		}
	})

	t.Run("reconnect after server crash", func(t *testing.T) {
		ep := base
		ep.Epoch, ep.BatchSize = 2, 8
		var got []*stokerv1.Sample
		n := 0
		for b, err := range e.client.Batches(ctx, ep) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b.Samples...)
			if n++; n == 2 {
				e.srv.restart() // SIGKILL, then start again on the same port
			}
		}
		e.checkEpoch(t, got)
	})

	t.Run("epoch while S3 is down", func(t *testing.T) {
		e.s3.Stop()
		defer e.s3.Restart(t)
		ep := base
		ep.Epoch = 3
		before, err := e.client.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.checkEpoch(t, readAll(t, e.client, ep))
		after, err := e.client.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.GetMisses() != before.GetMisses() {
			t.Errorf("%d cache misses with S3 down", after.GetMisses()-before.GetMisses())
		}

		// A restarted server still has the manifest, the indexes and the
		// disk tier: the dataset stays readable through the outage.
		e.srv.restart()
		ds, err := e.client.OpenDataset(ctx, e.url)
		if err != nil {
			t.Fatal(err)
		}
		if !ds.GetFromStoredManifest() {
			t.Error("dataset opened with S3 down is not marked as from the stored manifest")
		}
		ep.Epoch = 4
		e.checkEpoch(t, readAll(t, e.client, ep))
		st, err := e.client.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.GetDiskHits() == 0 || st.GetStorageBytes() != 0 {
			t.Errorf("after restart: %d disk hits, %d bytes from storage; want >0 and 0", st.GetDiskHits(), st.GetStorageBytes())
		}
	})
}
