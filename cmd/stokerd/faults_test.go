package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
)

// faultCycle is the proxy's schedule of faults on object GETs: throttling,
// 500s, connections reset before the answer or mid-body, and bodies that
// stall with the connection open, among GETs that pass.
var faultCycle = []s3test.Fault{
	s3test.Pass, s3test.SlowDown, s3test.Reset, s3test.Pass, s3test.Stall,
	s3test.Pass, s3test.SlowDown, s3test.Stall, s3test.Reset, s3test.Pass,
	s3test.Drop, s3test.Pass, s3test.InternalError, s3test.Stall,
}

// Epochs read through an S3 store that sends no ETags and, on a schedule,
// throttles (503 SlowDown), resets connections mid-body and stalls bodies
// with the connection left open: every epoch is exact, WebDataset and
// Parquet alike, and nothing waits past the read timeout's retries. The
// memory tier is too small to keep any shard, and there is no disk tier,
// so every epoch reads storage again.
func TestFaultInjection(t *testing.T) {
	s3, shards, want := startS3Dataset(t)
	col := &colEnv{s3: s3, sizes: map[string]int64{}}
	rows := col.putSynthetic(t, "col/", 2, 3, 300)
	proxy := s3test.StartProxy(t, s3)
	proxy.StripETags(true)
	// At most 4 faults per object: with 5 attempts (per request for
	// answers the SDK retries, per range for bodies) a read always ends.
	proxy.Schedule(faultCycle, 4)
	srv := startStokerd(t, proxy.Env(), t.TempDir(),
		"--s3-read-timeout", "400ms", "--memory-cache", "64KiB", "--disk-cache", "0")
	client := dialRetrying(t, srv.grpc)
	e := &env{s3: s3, srv: srv, client: client, want: want, url: "s3://" + bucket + "/train/"}

	start := time.Now()
	for epoch := range 3 {
		e.checkEpoch(t, readAll(t, client, stoker.Epoch{URL: e.url, Seed: 9, Epoch: uint64(epoch), BatchSize: 8, ShuffleWindow: 3}))
	}
	t.Logf("3 WebDataset epochs of %d shards in %v", len(shards), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	for epoch := range 2 {
		ids := readRows(t, client, stoker.Epoch{URL: "s3://" + bucket + "/col/", Seed: 4, Epoch: uint64(epoch), BatchSize: 64, ShuffleWindow: 2}, rows)
		slices.Sort(ids)
		for i, id := range ids {
			if id != int64(i) {
				t.Fatalf("Parquet epoch %d: row %d is id %d: rows lost or repeated (%d of %d)", epoch, i, id, len(ids), len(rows))
			}
		}
		if len(ids) != len(rows) {
			t.Fatalf("Parquet epoch %d: %d rows, want %d", epoch, len(ids), len(rows))
		}
	}
	t.Logf("2 Parquet epochs in %v", time.Since(start).Round(time.Millisecond))

	inj := proxy.Injected()
	for _, f := range []s3test.Fault{s3test.SlowDown, s3test.Reset, s3test.Stall, s3test.Drop, s3test.InternalError} {
		if inj[f] == 0 {
			t.Errorf("no %v was injected: the schedule proves nothing about it", f)
		}
	}
	t.Logf("faults injected: %v", fmt.Sprint(inj))
}
