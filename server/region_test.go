package server

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/gpu/gputest"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// withPoisonRegion gives the server a memory tier of n bytes in a region
// whose freed bytes are poisoned; it returns the arena to inspect.
func withPoisonRegion(t *testing.T, n int) (func(*Config), gputest.PoisonArena) {
	_, arena := gputest.NewPoisonRegion(t, n) // closed after the server's Shutdown
	return func(c *Config) {
		c.Cache.MemoryBytes, c.Cache.Memory = int64(n), arena
	}, arena
}

// tarFields reads every member of the tars in dir as "key.field" → bytes.
func tarFields(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	names, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			out[h.Name] = b
		}
		f.Close()
	}
	return out
}

// With the memory tier in a small region that evicts all the time, every
// byte of every batch is still right: a shard's bytes stay pinned until
// the batch built from them is sent.
func TestRegionEvictionKeepsBatchesIntact(t *testing.T) {
	mutate, arena := withPoisonRegion(t, 96<<10) // 3 of the 32 KiB shards
	h := newHarness(t, wds.Synthetic{Shards: 12, PerShard: 8, SampleSize: 4 << 10, Seed: 5}, mutate)
	want := tarFields(t, strings.TrimSuffix(strings.TrimPrefix(h.url, "file://"), "/"))
	for epoch := range uint64(2) {
		n := 0
		for b, err := range h.client.Batches(context.Background(), stoker.Epoch{URL: h.url, Seed: 9, Epoch: epoch, BatchSize: 5, ShuffleWindow: 4}) {
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range b.Samples {
				for _, f := range s.GetFields() {
					if !bytes.Equal(f.GetData(), want[s.GetKey()+"."+f.GetName()]) {
						t.Fatalf("epoch %d: %s.%s differs from the tar", epoch, s.GetKey(), f.GetName())
					}
				}
				n++
			}
		}
		if n != 96 {
			t.Fatalf("epoch %d: %d samples, want 96", epoch, n)
		}
	}
	m := h.srv.cache.Metrics()
	if m.Memory.Evictions == 0 || arena.Used() == 0 {
		t.Fatalf("the test must evict from the region: %+v, arena %d bytes", m.Memory, arena.Used())
	}
	info := h.srv.Stats().GetHost().GetMemoryRegion()
	if !info.GetRegion() || info.GetReason() != "supplied by the caller" {
		t.Fatalf("Stats.host.memory_region = %v", info)
	}
}

// Decoded units outlive the unit bytes they came from, which evictions
// free and the region reuses: rows must still be right (with
// TestDecodeKeepsNoInput, which checks the decoder itself).
func TestRegionEvictionKeepsDecodedUnitsIntact(t *testing.T) {
	fixture, err := os.ReadFile("../prefetch/columnar/testdata/pyarrow/batches.arrow")
	if err != nil {
		t.Fatal(err)
	}
	fr, err := ipc.NewFileReader(bytes.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	const copies = 3
	want := map[string]int{} // each row's values → how many times
	for i := range fr.NumRecords() {
		rec, err := fr.RecordBatch(i)
		if err != nil {
			t.Fatal(err)
		}
		for r := range int(rec.NumRows()) {
			want[rowString(rec, r)] += copies
		}
	}
	fr.Close()
	dir := t.TempDir()
	for f := range copies {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.arrow", f)), fixture, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mutate, _ := withPoisonRegion(t, len(fixture)*2) // two of the three files
	c, _, _ := columnarServer(t, func(c *Config) {
		mutate(c)
		c.Cache.Policy = cache.PolicyLRU // evicts units the plan still needs, whose decoded records live on
	})
	url := "file://" + dir + "/"
	for epoch := range uint64(2) {
		got := map[string]int{}
		for b, err := range c.Batches(context.Background(), stoker.Epoch{URL: url, Seed: 2, Epoch: epoch, BatchSize: 16}) {
			if err != nil {
				t.Fatal(err)
			}
			for i := range int(b.Record.NumRows()) {
				got[rowString(b.Record, i)]++
			}
		}
		for row, n := range got {
			if want[row] != n {
				t.Fatalf("epoch %d: row %s arrived %d times, want %d", epoch, row, n, want[row])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("epoch %d: %d distinct rows, want %d", epoch, len(got), len(want))
		}
	}
	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.GetEvictions() == 0 {
		t.Fatal("the test must evict from the region")
	}
}

// rowString renders row i's values.
func rowString(rec arrow.RecordBatch, i int) string {
	var sb strings.Builder
	for _, col := range rec.Columns() {
		sb.WriteString(col.ValueStr(i))
		sb.WriteByte('|')
	}
	return sb.String()
}
