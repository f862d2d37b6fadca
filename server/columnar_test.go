package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/columnar"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// columnarServer serves Parquet files of the synthetic rows from a folder,
// 2 files of 3 row groups, 600 rows in all.
func columnarServer(t *testing.T, mutate func(*Config)) (*stoker.Client, string, string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for f := range 2 {
		var recs []arrow.RecordBatch
		first := int64(f * 300)
		for _, n := range []int{120, 50, 130} {
			recs = append(recs, columnar.Synthetic(first, n, 3))
			first += int64(n)
		}
		b, err := columnar.WriteParquet(recs, compress.Codecs.Zstd)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, fmt.Sprintf("part-%d.parquet", f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := serveDir(t, dir, 64<<20, mutate)
	return h.client, h.url, h.addr
}

// A batch larger than MaxPartBytes arrives in several messages and the
// client joins them into one record; short last batches and drop_last
// keep the WebDataset rules.
func TestColumnarParts(t *testing.T) {
	c, url, addr := columnarServer(t, func(cfg *Config) { cfg.MaxPartBytes = 4 << 10 })
	t.Run("messages of a step", func(t *testing.T) {
		st, err := stokerv1.NewLoaderClient(dialRaw(t, addr)).StreamBatches(context.Background(), &stokerv1.StreamBatchesRequest{Url: url, BatchSize: 256})
		if err != nil {
			t.Fatal(err)
		}
		parts, rows := 0, 0
		for {
			m, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			parts++
			rows += len(m.GetRowShards())
			if m.GetFirstPosition() != uint64(rows-len(m.GetRowShards())) {
				t.Fatalf("part %d starts at %d, want %d", parts, m.GetFirstPosition(), rows-len(m.GetRowShards()))
			}
			if m.GetFinal() {
				break
			}
			if m.GetCursor() != nil {
				t.Fatalf("part %d is not final but has a cursor", parts)
			}
		}
		if parts < 4 || rows != 256 {
			t.Fatalf("step 0 came in %d messages with %d rows; want several parts of 256 rows", parts, rows)
		}
	})
	for _, tc := range []struct {
		batch    int
		dropLast bool
		rows     int // rows delivered
		last     int // rows of the last batch
	}{
		{batch: 256, rows: 600, last: 600 - 512},
		{batch: 256, dropLast: true, rows: 512, last: 256},
		{batch: 600, rows: 600, last: 600},
	} {
		t.Run(fmt.Sprintf("batch=%d,dropLast=%v", tc.batch, tc.dropLast), func(t *testing.T) {
			seen := map[int64]bool{}
			lastRows := 0
			for b, err := range c.Batches(context.Background(), stoker.Epoch{URL: url, Seed: 4, BatchSize: tc.batch, DropLast: tc.dropLast}) {
				if err != nil {
					t.Fatal(err)
				}
				if b.Record == nil || len(b.RowShards) != int(b.Record.NumRows()) || b.Rows() > tc.batch {
					t.Fatalf("step %d: record %v with %d row shards", b.Step, b.Record, len(b.RowShards))
				}
				ids := b.Record.Column(0).(*array.Int64)
				for i := range ids.Len() {
					if seen[ids.Value(i)] {
						t.Fatalf("id %d twice", ids.Value(i))
					}
					seen[ids.Value(i)] = true
				}
				lastRows = b.Rows()
			}
			if len(seen) != tc.rows || lastRows != tc.last {
				t.Fatalf("%d rows, last batch %d; want %d, %d", len(seen), lastRows, tc.rows, tc.last)
			}
		})
	}
}

// What a columnar dataset refuses or ignores, as the wire says it (the
// one dispatch on a dataset's format, wireOf): a pipeline (StreamBatches
// names pipeline, Preprocess names url), and fields (OpenDataset answers
// with columns and no fields).
func TestColumnarWireRefusals(t *testing.T) {
	c, url, addr := columnarServer(t, nil)
	ctx := context.Background()
	conn := dialRaw(t, addr)
	err := streamErr(ctx, stokerv1.NewLoaderClient(conn), &stokerv1.StreamBatchesRequest{Url: url, BatchSize: 4, Pipeline: readyPipeline(1)})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "pipeline: ") ||
		!strings.Contains(err.Error(), "is columnar: a pipeline decodes WebDataset fields") {
		t.Errorf("pipeline on a columnar stream: %v, want InvalidArgument naming pipeline", err)
	}
	_, err = stokerv1.NewPeerClient(c.Conn()).Preprocess(ctx, &stokerv1.PreprocessRequest{Url: url, Pipeline: readyPipeline(1),
		Samples: []*stokerv1.PreprocessSample{{Shard: 0, Sample: 0}}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "url: ") ||
		!strings.Contains(err.Error(), "is columnar") {
		t.Errorf("Preprocess of a columnar dataset: %v, want InvalidArgument naming url", err)
	}
	resp, err := stokerv1.NewLoaderClient(conn).OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: url, Fields: true})
	if err != nil {
		t.Fatal(err)
	}
	ds := resp.GetDataset()
	if len(ds.GetFields()) != 0 || len(ds.GetColumns()) != columnar.SyntheticSchema.NumFields() || len(ds.GetArrowSchema()) == 0 || len(ds.GetShards()) != 6 {
		t.Errorf("OpenDataset with fields of a columnar dataset: %d fields, %d columns, %d shards; want none, %d, 6",
			len(ds.GetFields()), len(ds.GetColumns()), len(ds.GetShards()), columnar.SyntheticSchema.NumFields())
	}
	var total uint64
	seen := map[string]bool{}
	for i, sh := range ds.GetShards() {
		if sh.GetPart() != uint32(i%3) || sh.GetLength() == 0 {
			t.Errorf("shard %d: part %d, length %d", i, sh.GetPart(), sh.GetLength())
		}
		if !seen[sh.GetObject()] {
			seen[sh.GetObject()] = true
			total += uint64(sh.GetSize())
		}
	}
	if ds.GetTotalBytes() != total {
		t.Errorf("total bytes %d, want each object's once (%d)", ds.GetTotalBytes(), total)
	}
}
