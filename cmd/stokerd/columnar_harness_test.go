package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// pyarrowDir holds the files pyarrow wrote (see make_fixtures.py there).
const pyarrowDir = "../../prefetch/columnar/testdata/pyarrow"

// colEnv is an S3 server with columnar datasets, a proxy recording its
// GETs, and a stokerd reading through the proxy.
type colEnv struct {
	s3     *s3test.Server
	proxy  *s3Proxy
	srv    *stokerd
	client *stoker.Client
	sizes  map[string]int64 // object URL → size
}

func newColEnv(t *testing.T) *colEnv {
	t.Helper()
	e := newColStore(t)
	e.srv = startStokerd(t, e.proxy.env(e.s3.Env()), t.TempDir())
	c, err := stoker.Dial(e.srv.grpc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.client = c
	return e
}

// newColStore is a colEnv without its stokerd: an empty bucket and the
// proxy, for tests that start their own servers.
func newColStore(t *testing.T) *colEnv {
	t.Helper()
	s3 := s3test.Start(t)
	s3.CreateBucket(t, bucket)
	return &colEnv{s3: s3, proxy: startS3Proxy(t, s3.Endpoint), sizes: map[string]int64{}}
}

func (e *colEnv) put(t *testing.T, key string, data []byte) {
	t.Helper()
	e.s3.Put(t, bucket, key, data)
	e.sizes["s3://"+bucket+"/"+key] = int64(len(data))
}

// putPyarrow uploads the pyarrow fixtures: Parquet under pq/, IPC files
// under ipc/, the stream under stream/.
func (e *colEnv) putPyarrow(t *testing.T) {
	t.Helper()
	names, err := filepath.Glob(pyarrowDir + "/*.*")
	if err != nil || len(names) < 7 {
		t.Fatalf("pyarrow fixtures in %s: %v (%d files)", pyarrowDir, err, len(names))
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(n)
		switch filepath.Ext(base) {
		case ".parquet":
			e.put(t, "pq/"+base, b)
		case ".arrow", ".feather":
			e.put(t, "ipc/"+base, b)
		case ".arrows":
			e.put(t, "stream/"+base, b)
		}
	}
}

// putArrowGo uploads Parquet files written by arrow-go under goq/: one per
// codec, row groups of different sizes, ids 0..n-1 over all files. It
// returns the rows by id.
func (e *colEnv) putArrowGo(t *testing.T) map[int64][]float32 {
	t.Helper()
	want := map[int64][]float32{}
	first := int64(0)
	for i, c := range []compress.Compression{compress.Codecs.Snappy, compress.Codecs.Zstd, compress.Codecs.Gzip} {
		var recs []arrow.RecordBatch
		for _, n := range []int{700, 300, 1000} {
			r := columnar.Synthetic(first, n, 5)
			recs = append(recs, r)
			emb := r.Column(4).(*array.FixedSizeList)
			fl := emb.ListValues().(*array.Float32).Float32Values()
			for j := range n {
				s, end := emb.ValueOffsets(j)
				want[first+int64(j)] = fl[s:end]
			}
			first += int64(n)
		}
		b, err := columnar.WriteParquet(recs, c)
		if err != nil {
			t.Fatal(err)
		}
		e.put(t, "goq/part-"+string(rune('a'+i))+".parquet", b)
	}
	return want
}

// putSynthetic uploads Parquet files written by arrow-go under prefix:
// files of groups row groups of rows rows (columnar.Synthetic: ids
// 0..n-1 over all files, nulls, lists, a fixed-size embedding), one codec
// per file. It returns every row by id as stoker.RowValues gives it, in
// JSON: what a reader must get back.
func (e *colEnv) putSynthetic(t *testing.T, prefix string, files, groups, rows int) map[int64]string {
	t.Helper()
	codecs := []compress.Compression{compress.Codecs.Snappy, compress.Codecs.Zstd, compress.Codecs.Gzip, compress.Codecs.Uncompressed}
	want := map[int64]string{}
	first := int64(0)
	for f := range files {
		var recs []arrow.RecordBatch
		for range groups {
			r := columnar.Synthetic(first, rows, uint64(f+1))
			recs = append(recs, r)
			for i := range rows {
				want[first+int64(i)] = rowJSON(t, r, i)
			}
			first += int64(rows)
		}
		b, err := columnar.WriteParquet(recs, codecs[f%len(codecs)])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			r.Release()
		}
		e.put(t, fmt.Sprintf("%spart-%03d.parquet", prefix, f), b)
	}
	return want
}

func rowJSON(t *testing.T, rec arrow.RecordBatch, i int) string {
	t.Helper()
	b, err := json.Marshal(stoker.RowValues(rec, i))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readRows reads one rank's share of an epoch with all columns, checks
// each row's values against want, and returns the ids in order.
func readRows(t *testing.T, c *stoker.Client, ep stoker.Epoch, want map[int64]string) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []int64
	for b, err := range c.Batches(ctx, ep) {
		if err != nil {
			t.Errorf("epoch %d rank %d: %v", ep.Epoch, ep.Rank, err)
			return ids
		}
		r := b.Record
		if r == nil || r.NumCols() != int64(columnar.SyntheticSchema.NumFields()) {
			t.Errorf("epoch %d rank %d step %d: record %v, want every column", ep.Epoch, ep.Rank, b.Step, r)
			return ids
		}
		col := r.Column(0).(*array.Int64)
		for i := range int(r.NumRows()) {
			id := col.Value(i)
			if got := rowJSON(t, r, i); got != want[id] {
				t.Errorf("row id %d:\n got %s\nwant %s", id, got, want[id])
				return ids
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// unitGets counts the GETs of each unit of ds, keyed as the proxy sees
// them ("bucket/key bytes=FIRST-LAST"); every unit has a count, 0 if it
// was not read. A GET that is no unit's byte range fails the test.
func unitGets(t *testing.T, ds *stokerv1.Dataset, gets []objectGet) map[string]int {
	t.Helper()
	units := map[string]int{}
	for _, s := range ds.GetShards() {
		units[fmt.Sprintf("%s bytes=%d-%d", strings.TrimPrefix(s.GetObject(), "s3://"), s.GetOffset(), s.GetOffset()+s.GetLength()-1)] = 0
	}
	for _, g := range gets {
		k := g.key + " " + g.rng
		if _, ok := units[k]; !ok {
			t.Fatalf("GET %s is not one unit's byte range\nunits: %v\nGETs: %v", k, units, gets)
		}
		units[k]++
	}
	return units
}

// checkOnce fails the test unless every unit was read exactly once.
func checkOnce(t *testing.T, what string, counts map[string]int) {
	t.Helper()
	for k, n := range counts {
		if n != 1 {
			t.Errorf("%s: unit %s read %d times from S3, want once", what, k, n)
		}
	}
}

// rowLineJSON is a line of stoker read --jsonl on a columnar dataset.
type rowLineJSON struct {
	Epoch  uint64         `json:"epoch"`
	Rank   int            `json:"rank"`
	Step   uint64         `json:"step"`
	Object string         `json:"object"`
	Row    map[string]any `json:"row"`
}

// stokerRead runs the stoker command's read with --jsonl and parses it.
func stokerRead(t *testing.T, addr string, args ...string) []rowLineJSON {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "stoker"), append([]string{"read", "--server", addr, "--jsonl"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stoker read %v: %v\n%s", args, err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("stoker read %v did not finish", args)
	}
	var out []rowLineJSON
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l rowLineJSON
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// checkRowLine fails the test when l's row (by object and id) is in seen,
// or its values are not want's for its id; it then adds the row to seen.
func checkRowLine(t *testing.T, l rowLineJSON, want map[string]string, seen map[string]bool) {
	t.Helper()
	id := string(l.Row["id"].(json.Number))
	key := l.Object + "#" + id
	if seen[key] {
		t.Fatalf("row %s delivered twice", key)
	}
	seen[key] = true
	if got := canonical(t, l.Row); got != want[id] {
		t.Fatalf("%s row id %s:\n got %s\nwant %s", l.Object, id, got, want[id])
	}
}

// expectedRows reads what pyarrow's to_pylist() gave for every row, by id.
func expectedRows(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(pyarrowDir + "/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range bytes.SplitSeq(bytes.TrimSpace(b), []byte("\n")) {
		var row map[string]any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&row); err != nil {
			t.Fatal(err)
		}
		out[string(row["id"].(json.Number))] = canonical(t, row)
	}
	return out
}

// canonical re-encodes a decoded JSON value with numbers as float64, so
// 1 and 1.0 compare equal, as they do in Python.
func canonical(t *testing.T, v any) string {
	t.Helper()
	var norm func(any) any
	norm = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			f, err := v.Float64()
			if err != nil {
				t.Fatalf("number %q: %v", v, err)
			}
			return f
		case map[string]any:
			for k, x := range v {
				v[k] = norm(x)
			}
		case []any:
			for i, x := range v {
				v[i] = norm(x)
			}
		}
		return v
	}
	b, err := json.Marshal(norm(v))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
