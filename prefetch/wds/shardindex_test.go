package wds

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// shardCorpus returns shards (as stored: some gzipped) of every kind the
// package's other tests use: archive/tar's three formats with long,
// non-ASCII and odd names, GNU tar's archives plain and gzipped, random
// tars, the synthetic dataset's and a realistic image shard.
func shardCorpus(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	long := "long/" + strings.Repeat("d", 120) + "/" + strings.Repeat("n", 130)
	sets := map[string][]entry{
		"samples": {{name: "train/", typ: tar.TypeDir}, file("train/000001.jpg", body(1, 3000)), file("train/000001.cls", "7"),
			{name: "train/000001.alt.jpg", typ: tar.TypeSymlink, link: "000001.jpg"}, file("train/000001.seg.PNG", body(3, 700)),
			file("train/000002.JPG", body(2, 1024)), file("train/000002.cls", "3")},
		"keys and dots": {file("a.jpg", "1"), file("b.jpg", "2"), file("a.cls", "3"), file("x/y.z/000001.tar.gz", "4"),
			file("a/.jpg", "5"), file("sample.", "6"), file("c.JPEG", "7"), file("c.jpg", "8"), {name: "c.raw", typ: tar.TypeCont, body: "9"}},
		"skipped": {file("__index__", "meta"), file("README", "x"), file("a.jpg", "A"), {name: "a.fifo", typ: tar.TypeFifo},
			file("a.cls", "1"), file("x/__meta__/y.json", "z")},
		"padding": {file("s0.bin", ""), file("s1.bin", "x"), file("s511.bin", body(4, 511)), file("s512.bin", body(5, 512)),
			file("s513.bin", body(6, 513)), file("s1024.bin", body(7, 1024))},
		"empty": {{name: "d/", typ: tar.TypeDir}},
	}
	for name, entries := range sets {
		for _, format := range allFormats {
			data := makeTar(t, format, entries)
			out[name+"/"+format.String()] = data
			out[name+"/"+format.String()+"+gz"] = gz(t, data)
		}
	}
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		out["long names/"+format.String()] = makeTar(t, format, []entry{file(long+".JPG", body(8, 900)), file(long+".cls", "5"), file(long+"2.cls", "6")})
	}
	out["non-ASCII/PAX"] = makeTar(t, tar.FormatPAX, []entry{file("données/échantillon.JPG", "1"), file("données/échantillon.Légende.TXT", "2"),
		file("κλειδί.ΑΣ", "3"), file("日本/写真.ＰＮＧ", "7")})
	tree, _ := shardTree(t)
	for _, format := range []string{"gnu", "posix", "ustar"} {
		out["gnutar/"+format] = runTar(t, tree, "--format="+format, "--sort=name", "-c", "data")
		out["gnutar/"+format+"+gz"] = runTar(t, tree, "--format="+format, "--sort=name", "-z", "-c", "data")
	}
	dir := t.TempDir()
	if err := (Synthetic{Shards: 1, PerShard: 50, SampleSize: 1000, Seed: 3}).Write(dir); err != nil {
		t.Fatal(err)
	}
	synth, err := os.ReadFile(filepath.Join(dir, "train-000000.tar"))
	if err != nil {
		t.Fatal(err)
	}
	out["synthetic"] = synth
	out["images"] = imageShard(t, 300, 7)
	rng := rand.New(rand.NewPCG(11, 11))
	for i := 0; i < 200; {
		if data, ok := randomTar(rng); ok {
			out[fmt.Sprintf("random/%03d", i)] = data
			i++
		}
	}
	return out
}

// imageShard is a realistic shard: n samples keyed "%06d" with a jpg of
// 20 to 200 KiB, a cls label and a json record, as webdataset's TarWriter
// writes them (ustar headers).
func imageShard(t testing.TB, n int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	jpg := []byte(body(seed, 200<<10))
	var entries []entry
	for i := range n {
		key := fmt.Sprintf("%06d", 1000*int(seed)+i)
		size := 20<<10 + rng.IntN(180<<10)
		entries = append(entries,
			file(key+".jpg", string(jpg[:size])),
			file(key+".cls", fmt.Sprint(rng.IntN(1000))),
			file(key+".json", fmt.Sprintf(`{"caption":"sample %d","width":%d,"height":%d}`, i, 200+rng.IntN(800), 200+rng.IntN(800))))
	}
	return makeTar(t, tar.FormatUSTAR, entries)
}

// checkAgrees fails t unless x says what samples says, field by field.
func checkAgrees(t *testing.T, x *ShardIndex, samples []Sample) {
	t.Helper()
	if x.Len() != len(samples) {
		t.Fatalf("Len %d, Index has %d samples", x.Len(), len(samples))
	}
	names := map[string]bool{}
	for j, s := range samples {
		if x.Key(j) != s.Key || x.NumFields(j) != len(s.Fields) {
			t.Fatalf("sample %d: key %q with %d fields, Index has %q with %d", j, x.Key(j), x.NumFields(j), s.Key, len(s.Fields))
		}
		for f, want := range s.Fields {
			if got := x.Field(j, f); got != want {
				t.Fatalf("sample %q field %d: %+v, Index has %+v", s.Key, f, got, want)
			}
			names[want.Name] = true
		}
		last := s.Fields[len(s.Fields)-1]
		if off, end := x.Span(j); off != s.Fields[0].Offset || end != last.Offset+last.Size {
			t.Fatalf("sample %q: Span [%d, %d), want [%d, %d)", s.Key, off, end, s.Fields[0].Offset, last.Offset+last.Size)
		}
	}
	want := make([]string, 0, len(names))
	for n := range names {
		want = append(want, n)
	}
	slices.Sort(want)
	if got := x.FieldNames(); !slices.Equal(got, want) {
		t.Fatalf("FieldNames %q, want %q", got, want)
	}
	if got := x.Samples(); !reflect.DeepEqual(got, samples) && len(samples) > 0 {
		t.Fatalf("Samples differ:\n%s\n%s", describe(got), describe(samples))
	}
}

// TestShardIndexAgreesWithIndex indexes every shard of the corpus both
// ways and checks that every key, field, span and name agrees, that Size is
// the decompressed length, and that the binary form reads back equal.
func TestShardIndexAgreesWithIndex(t *testing.T) {
	compared := 0
	for name, shard := range shardCorpus(t) {
		data, err := Decompress(shard)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		samples, ierr := IndexBytes(data)
		r, err := NewReader(iotest.HalfReader(bytes.NewReader(shard)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		x, err := IndexShard(r)
		if ierr != nil || err != nil {
			if ierr == nil || err == nil || err.Error() != ierr.Error() {
				t.Fatalf("%s: IndexShard error %v, Index error %v", name, err, ierr)
			}
			continue
		}
		t.Run(name, func(t *testing.T) {
			checkAgrees(t, x, samples)
			if x.Size() != int64(len(data)) {
				t.Errorf("Size %d, the tar has %d bytes", x.Size(), len(data))
			}
			b, err := x.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalShardIndex(b)
			if err != nil {
				t.Fatalf("reading back %d bytes: %v", len(b), err)
			}
			if !back.Equal(x) {
				t.Fatalf("read back differs:\n%s\n%s", describe(back.Samples()), describe(samples))
			}
			checkAgrees(t, back, samples)
			fromSamples, err := NewShardIndex(samples)
			if err != nil {
				t.Fatal(err)
			}
			checkAgrees(t, fromSamples, samples)
		})
		compared += len(samples)
	}
	if compared < 1000 {
		t.Errorf("only %d samples compared", compared)
	}
}

// TestShardIndexTruncated cuts a shard at every byte: IndexShard fails
// exactly where Index does, with the same error, and otherwise agrees.
func TestShardIndexTruncated(t *testing.T) {
	data := makeTar(t, tar.FormatPAX, []entry{file("a.jpg", body(21, 700)), file("a.cls", ""),
		file("b/"+strings.Repeat("x", 120)+".txt", body(22, 512)), file("c.bin", body(24, 1030))})
	ok := 0
	for cut := range len(data) {
		samples, ierr := IndexBytes(data[:cut])
		x, err := IndexShard(bytes.NewReader(data[:cut]))
		if (err == nil) != (ierr == nil) || (err != nil && err.Error() != ierr.Error()) {
			t.Fatalf("cut %d: IndexShard error %v, Index error %v", cut, err, ierr)
		}
		if err == nil {
			checkAgrees(t, x, samples)
			ok++
		}
	}
	if ok == 0 || ok == len(data) {
		t.Fatalf("%d of %d cuts indexed: the test cuts nothing useful", ok, len(data))
	}
}

// TestNewShardIndexRejects lists what Index never produces.
func TestNewShardIndexRejects(t *testing.T) {
	f := func(name string, off, size int64) Field { return Field{Name: name, Offset: off, Size: size} }
	tests := []struct {
		name    string
		samples []Sample
		kind    error
	}{
		{"empty key", []Sample{{Key: "", Fields: []Field{f("a", 512, 1)}}}, ErrCorrupt},
		{"no fields", []Sample{{Key: "k"}}, ErrCorrupt},
		{"same key twice in a row", []Sample{{Key: "k", Fields: []Field{f("a", 512, 1)}}, {Key: "k", Fields: []Field{f("b", 1536, 1)}}}, ErrCorrupt},
		{"duplicate field", []Sample{{Key: "k", Fields: []Field{f("a", 512, 1), f("a", 1536, 1)}}}, ErrCorrupt},
		{"negative size", []Sample{{Key: "k", Fields: []Field{f("a", 512, -1)}}}, ErrCorrupt},
		{"negative offset", []Sample{{Key: "k", Fields: []Field{f("a", -512, 1)}}}, ErrCorrupt},
		{"overlap", []Sample{{Key: "k", Fields: []Field{f("a", 512, 100), f("b", 600, 1)}}}, ErrCorrupt},
		{"out of order", []Sample{{Key: "k", Fields: []Field{f("a", 1536, 1)}}, {Key: "l", Fields: []Field{f("b", 512, 1)}}}, ErrCorrupt},
		{"key too long", []Sample{{Key: strings.Repeat("k", MaxKeyLen+1), Fields: []Field{f("a", 512, 1)}}}, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewShardIndex(tc.samples)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want a %v *Error", err, tc.kind)
			}
		})
	}
}

// TestShardIndexSize measures the binary form and the memory of a
// realistic shard against the JSON the catalog stores today and against
// []Sample, and holds the binary form to its budget: at most 16 bytes per
// sample plus the keys' bytes.
func TestShardIndexSize(t *testing.T) {
	const n = 1000
	shard := imageShard(t, n, 5)
	samples, err := IndexBytes(shard)
	if err != nil {
		t.Fatal(err)
	}
	x, err := IndexShard(bytes.NewReader(shard))
	if err != nil {
		t.Fatal(err)
	}
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(samples)
	if err != nil {
		t.Fatal(err)
	}
	keyBytes := 0
	for _, s := range samples {
		keyBytes += len(s.Key)
	}
	perSample := float64(len(b)) / n
	t.Logf("%d samples (keys %%06d, fields jpg/cls/json, %d MB tar): binary %d B (%.1f B/sample, %.1f without keys), JSON %d B (%.1f B/sample, %.0fx); memory %d B (%.1f B/sample), []Sample ≈ %d B",
		n, len(shard)>>20, len(b), perSample, float64(len(b)-keyBytes)/n, len(js), float64(len(js))/n, float64(len(js))/float64(len(b)),
		x.MemBytes(), float64(x.MemBytes())/n, sampleSliceBytes(samples))
	if budget := 16*n + keyBytes; len(b) > budget {
		t.Errorf("binary index of %d bytes, over the budget of %d (16 B per sample plus %d key bytes)", len(b), budget, keyBytes)
	}
	if x.MemBytes() >= sampleSliceBytes(samples) {
		t.Errorf("MemBytes %d is not below the []Sample form's %d", x.MemBytes(), sampleSliceBytes(samples))
	}
}

// sampleSliceBytes estimates the memory a []Sample holds: headers of the
// slices and strings and their bytes (every key and name a string of its
// own, as Index makes them, rounded to 8-byte allocations).
func sampleSliceBytes(samples []Sample) int64 {
	round := func(n int) int64 { return int64((n + 7) &^ 7) }
	total := int64(40 * cap(samples))
	for _, s := range samples {
		total += round(len(s.Key)) + int64(32*cap(s.Fields))
		for _, f := range s.Fields {
			total += round(len(f.Name))
		}
	}
	return total
}

// BenchmarkShardIndexDecode reads a 1000-sample shard's index back from
// its binary form, and ("x-json") reports the time as a fraction of
// reading the []Sample JSON the catalog stores today, measured in the same
// run (fastest of each).
func BenchmarkShardIndexDecode(b *testing.B) {
	shard := imageShard(b, 1000, 5)
	x, err := IndexShard(bytes.NewReader(shard))
	if err != nil {
		b.Fatal(err)
	}
	bin, _ := x.MarshalBinary()
	js, _ := json.Marshal(x.Samples())
	base := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		var s []Sample
		if err := json.Unmarshal(js, &s); err != nil {
			b.Fatal(err)
		}
		base = min(base, time.Since(start))
	}
	fastest := time.Duration(1<<63 - 1)
	b.SetBytes(int64(len(bin)))
	for b.Loop() {
		start := time.Now()
		if _, err := UnmarshalShardIndex(bin); err != nil {
			b.Fatal(err)
		}
		fastest = min(fastest, time.Since(start))
	}
	b.ReportMetric(float64(fastest)/float64(base), "x-json")
}

// pythonWriter writes, with Python's tarfile (as webdataset's TarWriter
// does), a shard of 40 samples in the format named by argv[2].
const pythonWriter = `
import io, sys, tarfile
fmt = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}[sys.argv[2]]
with tarfile.open(sys.argv[1], "w", format=fmt) as tf:
    for i in range(40):
        for ext, data in (("jpg", bytes(range(256)) * (i % 7 + 1)), ("cls", str(i % 10).encode()), ("json", b'{"i": %d}' % i)):
            ti = tarfile.TarInfo("shard/%06d.%s" % (i, ext))
            ti.size, ti.mtime = len(data), 1700000000
            tf.addfile(ti, io.BytesIO(data))
`

// TestShardIndexPythonWritten indexes shards Python's tarfile writes, in
// its three formats, both ways. It skips when python3 is not installed.
func TestShardIndexPythonWritten(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	for _, format := range []string{"gnu", "pax", "ustar"} {
		t.Run(format, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "shard.tar")
			if out, err := exec.Command(python, "-c", pythonWriter, p, format).CombinedOutput(); err != nil {
				t.Fatalf("python3: %v\n%s", err, out)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			samples, err := IndexBytes(data)
			if err != nil || len(samples) != 40 {
				t.Fatalf("Index: %d samples, %v", len(samples), err)
			}
			x, err := IndexShard(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			checkAgrees(t, x, samples)
			b, err := x.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalShardIndex(b)
			if err != nil || !back.Equal(x) || back.Size() != int64(len(data)) {
				t.Fatalf("read back: %v", err)
			}
		})
	}
}
