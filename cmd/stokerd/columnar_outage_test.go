package main

import (
	"context"
	"slices"
	"syscall"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// A columnar dataset read once stays readable while S3 is down, by the
// server that read it and by a restarted one: the restarted stokerd opens
// it from the stored manifest and footer indexes, reads every unit from
// its disk tier, asks S3 for no object, and every row arrives once per
// epoch with the values written.
func TestColumnarStoredManifestWhileS3Down(t *testing.T) {
	e := newColEnv(t)
	want := e.putSynthetic(t, "outage/", 3, 3, 200)
	url := "s3://" + bucket + "/outage/"
	ctx := context.Background()
	ds, err := e.client.OpenDatasetFormat(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	if ds.GetFromStoredManifest() || len(ds.GetShards()) != 9 || ds.GetNumSamples() != uint64(len(want)) {
		t.Fatalf("dataset: stored %v, %d units, %d rows; want fresh, 9, %d", ds.GetFromStoredManifest(), len(ds.GetShards()), ds.GetNumSamples(), len(want))
	}
	base := stoker.Epoch{URL: url, Seed: 9, BatchSize: 64, ShuffleWindow: 4}
	// epoch reads epoch n with two ranks: every row once, as written.
	epoch := func(n uint64) {
		t.Helper()
		ep := base
		ep.Epoch, ep.WorldSize = n, 2
		got := map[int64]int{}
		for rank := range 2 {
			ep.Rank = rank
			for _, id := range readRows(t, e.client, ep, want) {
				got[id]++
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		if len(got) != len(want) {
			t.Fatalf("epoch %d: %d distinct rows, want %d", n, len(got), len(want))
		}
		for id, k := range got {
			if k != 1 {
				t.Fatalf("epoch %d: row %d delivered %d times", n, id, k)
			}
		}
	}
	epoch(0)

	e.s3.Stop()
	defer e.s3.Restart(t)
	e.proxy.take()
	before, err := e.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	epoch(1) // the server that opened it: its catalog and cache
	after, err := e.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.GetStorageBytes() != before.GetStorageBytes() || after.GetMisses() != before.GetMisses() {
		t.Errorf("epoch with S3 down: %d bytes from storage, %d misses; want 0, 0",
			after.GetStorageBytes()-before.GetStorageBytes(), after.GetMisses()-before.GetMisses())
	}

	// A graceful stop lets the disk tier's background writes finish, then
	// a new process has only what is on disk.
	if err := e.srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-e.srv.exited
	e.srv.start()
	ds2, err := e.client.OpenDatasetFormat(ctx, url, "")
	if err != nil {
		t.Fatalf("open with S3 down after a restart: %v\nstokerd log:\n%s", err, e.srv.logs())
	}
	if !ds2.GetFromStoredManifest() {
		t.Error("dataset opened with S3 down is not marked as from the stored manifest")
	}
	if !slices.EqualFunc(ds.GetShards(), ds2.GetShards(), func(a, b *stokerv1.Shard) bool {
		return a.GetObject() == b.GetObject() && a.GetEtag() == b.GetEtag() && a.GetOffset() == b.GetOffset() &&
			a.GetLength() == b.GetLength() && a.GetSamples() == b.GetSamples()
	}) || string(ds.GetArrowSchema()) != string(ds2.GetArrowSchema()) {
		t.Fatalf("stored manifest differs from the one opened with S3 up:\n%v\n%v", ds.GetShards(), ds2.GetShards())
	}
	epoch(2)
	st, err := e.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetStorageBytes() != 0 || st.GetDiskHits() < uint64(len(ds.GetShards())) || st.GetMisses() != 0 {
		t.Errorf("after the restart: %d bytes from storage, %d disk hits, %d misses; want 0, at least %d, 0",
			st.GetStorageBytes(), st.GetDiskHits(), st.GetMisses(), len(ds.GetShards()))
	}
	if gets := e.proxy.take(); len(gets) != 0 {
		t.Errorf("with S3 down, stokerd asked for objects: %v", gets)
	}
}
