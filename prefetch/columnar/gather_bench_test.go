package columnar

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/stoker-data/stoker/shuffle"
)

// gatherCase is what a server holds during one shuffle window: decoded
// units and the plan's batches of rows drawn from them.
type gatherCase struct {
	schema  *arrow.Schema
	units   map[int32]arrow.RecordBatch
	batches [][]Row
	rows    int
}

// newGatherCase shuffles every row of recs (units 0, 1, …) and cuts the
// permutation into batches of the given size.
func newGatherCase(recs []arrow.RecordBatch, batch int, seed uint64) *gatherCase {
	c := &gatherCase{schema: recs[0].Schema(), units: map[int32]arrow.RecordBatch{}}
	var all []Row
	for u, r := range recs {
		c.units[int32(u)] = r
		for i := range int32(r.NumRows()) {
			all = append(all, Row{Unit: int32(u), Row: i})
		}
	}
	rand.New(rand.NewPCG(seed, 0)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for lo := 0; lo < len(all); lo += batch {
		c.batches = append(c.batches, all[lo:min(lo+batch, len(all))])
	}
	c.rows = len(all)
	return c
}

// syntheticUnits decodes a Parquet file of units × rows Synthetic rows,
// one row group per unit, as the server does.
func syntheticUnits(b testing.TB, units, rows int) []arrow.RecordBatch {
	b.Helper()
	data, err := WriteParquet(syntheticRecs(repeat(rows, units)...), compress.Codecs.Snappy)
	if err != nil {
		b.Fatal(err)
	}
	_, recs := decodeAll(b, shuffle.FormatParquet, data, nil)
	return recs
}

// fixtureUnits decodes the units of every pyarrow Parquet fixture (one
// schema: ids, floats, bools, strings, binary, lists, fixed-size lists,
// structs, maps, dictionaries, timestamps, dates, decimals; nulls).
func fixtureUnits(b testing.TB) []arrow.RecordBatch {
	b.Helper()
	var recs []arrow.RecordBatch
	for _, name := range []string{"default.parquet", "zstd.parquet", "gzip.parquet", "plain.parquet"} {
		data, err := os.ReadFile("testdata/pyarrow/" + name)
		if err != nil {
			b.Fatal(err)
		}
		_, rs := decodeAll(b, shuffle.FormatParquet, data, nil)
		recs = append(recs, rs...)
	}
	return recs
}

// embeddingUnits are units of the rows python/bench/bench_columnar.py
// writes: an int64 id, an int32 label, a float64 score and a fixed-size
// list of dim float32s, decoded from Parquet.
func embeddingUnits(b testing.TB, units, rows, dim int) []arrow.RecordBatch {
	b.Helper()
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "label", Type: arrow.PrimitiveTypes.Int32},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64},
		{Name: "emb", Type: arrow.FixedSizeListOf(int32(dim), arrow.PrimitiveTypes.Float32)},
	}, nil)
	r := rand.New(rand.NewPCG(2, 2))
	var recs []arrow.RecordBatch
	for u := range units {
		bl := array.NewRecordBuilder(memory.DefaultAllocator, s)
		emb := bl.Field(3).(*array.FixedSizeListBuilder)
		ev := emb.ValueBuilder().(*array.Float32Builder)
		for i := range rows {
			bl.Field(0).(*array.Int64Builder).Append(int64(u*rows + i))
			bl.Field(1).(*array.Int32Builder).Append(int32(r.IntN(1000)))
			bl.Field(2).(*array.Float64Builder).Append(r.Float64())
			emb.Append(true)
			for range dim {
				ev.Append(r.Float32())
			}
		}
		recs = append(recs, bl.NewRecordBatch())
		bl.Release()
	}
	data, err := WriteParquet(recs, compress.Codecs.Snappy)
	if err != nil {
		b.Fatal(err)
	}
	_, out := decodeAll(b, shuffle.FormatParquet, data, nil)
	return out
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}

// BenchmarkGather gathers every batch of a shuffled window of decoded
// units, as the server does for each step, with Gather and, in the same
// iteration, with the take path alone (what Gather was before its copy
// path), and reports both rates and their ratio.
func BenchmarkGather(b *testing.B) {
	cases := []struct {
		name  string
		recs  func(testing.TB) []arrow.RecordBatch
		batch int
	}{
		{"synthetic/batch=1024", func(t testing.TB) []arrow.RecordBatch { return syntheticUnits(t, 8, 4000) }, 1024},
		{"synthetic/batch=256", func(t testing.TB) []arrow.RecordBatch { return syntheticUnits(t, 8, 4000) }, 256},
		{"fixtures/batch=256", fixtureUnits, 256},
		{"embedding=256/batch=1024", func(t testing.TB) []arrow.RecordBatch { return embeddingUnits(t, 8, 4096, 256) }, 1024},
	}
	type gatherFunc func(context.Context, *arrow.Schema, map[int32]arrow.RecordBatch, []Row) (arrow.RecordBatch, error)
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			c := newGatherCase(tc.recs(b), tc.batch, 1)
			ctx := context.Background()
			epoch := func(gather gatherFunc) time.Duration {
				t := time.Now()
				for _, rows := range c.batches {
					out, err := gather(ctx, c.schema, c.units, rows)
					if err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
				return time.Since(t)
			}
			var copyT, takeT time.Duration
			b.ResetTimer()
			for range b.N {
				copyT += epoch(Gather)
				takeT += epoch(gatherTake)
			}
			rows := float64(b.N * c.rows)
			b.ReportMetric(rows/copyT.Seconds(), "rows/s")
			b.ReportMetric(rows/takeT.Seconds(), "take_rows/s")
			b.ReportMetric(takeT.Seconds()/copyT.Seconds(), "speedup")
		})
	}
}
