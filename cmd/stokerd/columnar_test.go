package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/columnar"
)

// Files written by pyarrow, read through `stoker read --jsonl` by two
// ranks: every row of every file arrives exactly once per epoch, with the
// values pyarrow's to_pylist() gives.
func TestColumnarPyarrow(t *testing.T) {
	e := newColEnv(t)
	e.putPyarrow(t)
	want := expectedRows(t)
	for _, tc := range []struct {
		prefix string
		files  int
		args   []string
	}{
		{"pq/", 4, []string{"--shuffle-window", "3"}},
		{"ipc/", 2, nil},
		{"stream/", 1, []string{"--format", "arrows", "--batch-size", "7"}},
	} {
		t.Run(strings.TrimSuffix(tc.prefix, "/"), func(t *testing.T) {
			url := "s3://" + bucket + "/" + tc.prefix
			seen := map[string]bool{}
			for rank := range 2 {
				args := append([]string{url, "--seed", "3", "--epoch", "1", "--batch-size", "16", "--rank", fmt.Sprint(rank), "--world-size", "2"}, tc.args...)
				for _, l := range stokerRead(t, e.srv.grpc, args...) {
					if l.Epoch != 1 || l.Rank != rank || !strings.HasPrefix(l.Object, url) {
						t.Fatalf("line %+v: wrong epoch, rank or object", l)
					}
					checkRowLine(t, l, want, seen)
				}
			}
			if len(seen) != tc.files*len(want) {
				t.Fatalf("epoch delivered %d rows, want %d", len(seen), tc.files*len(want))
			}
		})
	}

	t.Run("projection", func(t *testing.T) {
		lines := stokerRead(t, e.srv.grpc, "s3://"+bucket+"/pq/zstd.parquet", "--columns", "tags,id", "--no-shuffle")
		if len(lines) != len(want) {
			t.Fatalf("%d rows, want %d", len(lines), len(want))
		}
		for i, l := range lines {
			if len(l.Row) != 2 || string(l.Row["id"].(json.Number)) != fmt.Sprint(i) {
				t.Fatalf("row %d: %v; want columns id (%d) and tags only", i, l.Row, i)
			}
			var full map[string]any
			if err := json.Unmarshal([]byte(want[fmt.Sprint(i)]), &full); err != nil {
				t.Fatal(err)
			}
			if got, w := canonical(t, l.Row["tags"]), canonical(t, full["tags"]); got != w {
				t.Fatalf("row %d tags %s, want %s", i, got, w)
			}
		}
	})
}

// Parquet files written by arrow-go: indexing reads only footers with
// ranged GETs, the epoch fetches each row group's byte range once, three
// ranks together get every row once, and projection returns exactly the
// requested columns in the requested order.
func TestColumnarArrowGo(t *testing.T) {
	e := newColEnv(t)
	want := e.putArrowGo(t)
	url := "s3://" + bucket + "/goq/"
	ctx := context.Background()
	e.proxy.take()

	ds, err := e.client.OpenDatasetFormat(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	if ds.GetFormat() != "parquet" || len(ds.GetShards()) != 9 || ds.GetNumSamples() != uint64(len(want)) {
		t.Fatalf("dataset %s: %d shards, %d rows; want parquet, 9 row groups, %d rows", ds.GetFormat(), len(ds.GetShards()), ds.GetNumSamples(), len(want))
	}
	if s, err := stoker.Schema(ds); err != nil || s.NumFields() != 5 || s.Field(4).Name != "embedding" {
		t.Fatalf("schema %v, %v", s, err)
	}
	gets := e.proxy.take()
	if len(gets) != 3 {
		t.Fatalf("indexing made %d GETs, want one per file: %v", len(gets), gets)
	}
	for _, g := range gets {
		size := e.sizes["s3://"+g.key]
		if g.rng == "" || g.bytes > 64<<10 || g.bytes*4 > size {
			t.Fatalf("indexing GET of %s: range %q, %d bytes of %d; want a ranged read of the footer", g.key, g.rng, g.bytes, size)
		}
	}

	var mu sync.Mutex
	got := map[int64]int{}
	posID := map[uint64]int64{} // position in the epoch → id, over all ranks
	var wg sync.WaitGroup
	for rank := range 3 {
		wg.Go(func() {
			c, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			for b, err := range e.client.Batches(c, stoker.Epoch{URL: url, Seed: 11, Epoch: 2, Rank: rank, WorldSize: 3, BatchSize: 50, ShuffleWindow: 4, Columns: []string{"embedding", "id"}}) {
				if err != nil {
					t.Errorf("rank %d: %v", rank, err)
					return
				}
				r := b.Record
				if r == nil || r.NumCols() != 2 || r.Schema().Field(0).Name != "embedding" || r.Schema().Field(1).Name != "id" {
					t.Errorf("rank %d step %d: record %v; want columns embedding, id", rank, b.Step, r)
					return
				}
				ids := r.Column(1).(*array.Int64)
				emb := r.Column(0).(*array.FixedSizeList)
				vals := emb.ListValues().(*array.Float32).Float32Values()
				mu.Lock()
				for i := range int(r.NumRows()) {
					s, end := emb.ValueOffsets(i)
					if !slices.Equal(vals[s:end], want[ids.Value(i)]) {
						t.Errorf("id %d: embedding differs from what was written", ids.Value(i))
					}
					got[ids.Value(i)]++
					posID[b.FirstPosition+uint64(i)] = ids.Value(i)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != len(want) {
		t.Fatalf("%d distinct rows, want %d", len(got), len(want))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("row %d delivered %d times", id, n)
		}
	}
	// One rank alone reads the same sequence, and a cursor resumes it.
	one := stoker.Epoch{URL: url, Seed: 11, Epoch: 2, BatchSize: 150, ShuffleWindow: 4, Columns: []string{"id"}}
	var seq []int64
	var cursors []uint64
	for b, err := range e.client.Batches(ctx, one) {
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, b.Record.Column(0).(*array.Int64).Int64Values()...)
		cursors = append(cursors, b.Cursor)
	}
	for pos, id := range posID {
		if seq[pos] != id {
			t.Fatalf("position %d: id %d with 3 ranks, %d with 1", pos, id, seq[pos])
		}
	}
	one.Start = cursors[len(cursors)/2]
	var rest []int64
	for b, err := range e.client.Batches(ctx, one) {
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, b.Record.Column(0).(*array.Int64).Int64Values()...)
	}
	if !slices.Equal(rest, seq[one.Start:]) {
		t.Fatalf("resuming at %d gave %d rows, not the epoch's rest (%d)", one.Start, len(rest), len(seq)-int(one.Start))
	}

	// Every GET of the epoch is one row group's byte range, and every row
	// group is read exactly once, though three ranks, then one, read it,
	// and the next epoch's prefetch runs beside them: the dataset fits in
	// the cache, so a second GET of a unit is a wasted read.
	checkOnce(t, "epoch", unitGets(t, ds, e.proxy.take()))
	st, err := e.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetEvictions() != 0 {
		t.Fatalf("%d evictions: the test needs the dataset to fit in the cache", st.GetEvictions())
	}
}

// Bad columnar input gets a clear error naming the object or column, and a
// good stream beside it is not disturbed.
func TestColumnarBadInput(t *testing.T) {
	e := newColEnv(t)
	e.putPyarrow(t)
	e.put(t, "text/data.parquet", []byte(strings.Repeat("not parquet at all ", 100)))
	good, err := os.ReadFile(pyarrowDir + "/zstd.parquet")
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "mixed/a.parquet", good)
	other, err := columnar.WriteParquet([]arrow.RecordBatch{columnar.Synthetic(0, 10, 1)}, compress.Codecs.Snappy)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "mixed/b.parquet", other)
	corrupt := append([]byte(nil), good...)
	for i := len(corrupt) - 2000; i < len(corrupt)-8; i++ {
		corrupt[i] ^= 0x33
	}
	e.put(t, "corrupt/x.parquet", corrupt)
	e.put(t, "noext/blob", good)

	for _, tc := range []struct {
		name    string
		epoch   stoker.Epoch
		code    codes.Code
		mention string
	}{
		{"not parquet", stoker.Epoch{URL: "s3://" + bucket + "/text/", BatchSize: 4}, codes.DataLoss, "text/data.parquet.*Parquet magic"},
		{"corrupt footer", stoker.Epoch{URL: "s3://" + bucket + "/corrupt/", BatchSize: 4}, codes.DataLoss, "corrupt/x.parquet"},
		{"schemas differ", stoker.Epoch{URL: "s3://" + bucket + "/mixed/", BatchSize: 4}, codes.DataLoss, "mixed/b.parquet.*schema differs"},
		{"unknown column", stoker.Epoch{URL: "s3://" + bucket + "/pq/", BatchSize: 4, Columns: []string{"id", "nope"}}, codes.InvalidArgument, `columns: unknown column "nope".*pq/`},
		{"unknown format", stoker.Epoch{URL: "s3://" + bucket + "/pq/", BatchSize: 4, Format: "orc"}, codes.InvalidArgument, "orc"},
		{"no extension, no format", stoker.Epoch{URL: "s3://" + bucket + "/noext/blob", BatchSize: 4}, codes.DataLoss, "noext/blob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			wg.Go(func() {
				n := 0
				for b, err := range e.client.Batches(context.Background(), stoker.Epoch{URL: "s3://" + bucket + "/ipc/", Seed: 1, BatchSize: 32}) {
					if err != nil {
						t.Errorf("good stream: %v", err)
						return
					}
					n += b.Rows()
				}
				if n != 2*206 {
					t.Errorf("good stream read %d rows, want %d", n, 2*206)
				}
			})
			err := firstErr(e.client, tc.epoch)
			wg.Wait()
			if status.Code(err) != tc.code || !regexp.MustCompile(tc.mention).MatchString(err.Error()) {
				t.Fatalf("got %v; want code %v matching %q", err, tc.code, tc.mention)
			}
		})
	}

	t.Run("format given for an object without extension", func(t *testing.T) {
		n := 0
		for b, err := range e.client.Batches(context.Background(), stoker.Epoch{URL: "s3://" + bucket + "/noext/blob", Format: "parquet", BatchSize: 64}) {
			if err != nil {
				t.Fatal(err)
			}
			n += b.Rows()
		}
		if n != 206 {
			t.Fatalf("read %d rows, want 206", n)
		}
	})
}
