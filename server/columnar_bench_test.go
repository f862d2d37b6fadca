package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
)

// BenchmarkColumnarEpoch reads one shuffled epoch of a Parquet dataset on
// a real S3 server (versitygw) two ways in each iteration, and reports both
// rates and their ratio:
//
//   - stoker: through an in-process server whose cache is warm, to the Go
//     client over loopback gRPC, as Arrow record batches of 1024 rows,
//     by 1 or 2 ranks at once (each gets its share);
//   - s3: arrow-go reading the same files straight from the same S3 server
//     (whole-object GETs, pqarrow decoding every row group), the way a
//     trainer without Stoker would, in file order with no shuffle.
//
// MB/s counts the decoded Arrow bytes of the rows delivered.
func BenchmarkColumnarEpoch(b *testing.B) {
	for _, ranks := range []int{1, 2} {
		b.Run(fmt.Sprintf("ranks=%d", ranks), func(b *testing.B) { benchColumnarEpoch(b, ranks) })
	}
}

func benchColumnarEpoch(b *testing.B, ranks int) {
	const files, groups, rows = 4, 4, 4000
	store := s3test.Start(b)
	store.CreateBucket(b, "bench")
	for i := range files {
		var recs []arrow.RecordBatch
		for g := range groups {
			recs = append(recs, columnar.Synthetic(int64((i*groups+g)*rows), rows, 1))
		}
		data, err := columnar.WriteParquet(recs, compress.Codecs.Snappy)
		if err != nil {
			b.Fatal(err)
		}
		store.Put(b, "bench", fmt.Sprintf("pq/part-%03d.parquet", i), data)
	}
	cfg := s3.DefaultConfig()
	cfg.Endpoint, cfg.Credentials = store.Endpoint, store.Credentials()
	src, err := s3.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	sources := storage.NewSources(map[string]storage.Source{"s3": src})
	scfg := DefaultConfig()
	scfg.Cache.Dir = filepath.Join(b.TempDir(), "cache")
	scfg.Cache.MemoryBytes, scfg.Cache.DiskBytes = 1<<30, 0
	srv, err := New(scfg, sources, nil)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c, err := stoker.Dial(lis.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	url := "s3://bench/pq/"
	ctx := context.Background()
	// ranks read their shares of the epoch at once, as the trainers of
	// one node do.
	epoch := func(e uint64) (int64, int64) {
		var mu sync.Mutex
		var n, bytes int64
		var wg sync.WaitGroup
		for r := range ranks {
			wg.Go(func() {
				for bt, err := range c.Batches(ctx, stoker.Epoch{URL: url, Seed: 1, Epoch: e, BatchSize: 1024, ShuffleWindow: 4, Rank: r, WorldSize: ranks}) {
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					n += bt.Record.NumRows()
					bytes += columnar.RecordBytes(bt.Record)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return n, bytes
	}
	epoch(0) // warm the cache
	objs, err := dataset.Resolve(ctx, sources, url)
	if err != nil {
		b.Fatal(err)
	}
	direct := func() (int64, int64) {
		var n, bytes int64
		for _, o := range objs {
			data, err := storage.Fetch(ctx, src, o, storage.FetchOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n1, b1 := readParquet(b, data)
			n, bytes = n+n1, bytes+b1
		}
		return n, bytes
	}
	var stokerT, s3T time.Duration
	var stokerRows, stokerBytes, s3Rows, s3Bytes int64
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		n, by := epoch(uint64(i + 1))
		stokerT += time.Since(t)
		stokerRows, stokerBytes = stokerRows+n, stokerBytes+by
		t = time.Now()
		n, by = direct()
		s3T += time.Since(t)
		s3Rows, s3Bytes = s3Rows+n, s3Bytes+by
	}
	b.StopTimer()
	if stokerRows != s3Rows || stokerRows != int64(b.N*files*groups*rows) {
		b.Fatalf("stoker delivered %d rows, s3 %d, want %d", stokerRows, s3Rows, b.N*files*groups*rows)
	}
	sr, ss := float64(stokerRows)/stokerT.Seconds(), float64(s3Rows)/s3T.Seconds()
	b.ReportMetric(sr, "stoker_rows/s")
	b.ReportMetric(float64(stokerBytes)/1e6/stokerT.Seconds(), "stoker_MB/s")
	b.ReportMetric(ss, "s3_rows/s")
	b.ReportMetric(float64(s3Bytes)/1e6/s3T.Seconds(), "s3_MB/s")
	b.ReportMetric(sr/ss, "ratio")
}

// readParquet decodes a whole Parquet file and returns its rows and the
// decoded Arrow bytes.
func readParquet(b *testing.B, data []byte) (int64, int64) {
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 20}, memory.DefaultAllocator)
	if err != nil {
		b.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	var n, by int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
		by += columnar.RecordBytes(rr.RecordBatch())
	}
	if rr.Err() != nil {
		b.Fatal(rr.Err())
	}
	return n, by
}
