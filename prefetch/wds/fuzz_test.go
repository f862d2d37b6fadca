package wds

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzIndex feeds Index arbitrary bytes (gunzipped first if they look like
// gzip): it must not panic, must fail only with an *Error, and every field
// it returns must be a block-aligned range within the bytes, after the
// previous field and its header, whatever reader splits the stream.
func FuzzIndex(f *testing.F) {
	long := strings.Repeat("L", 110)
	for _, format := range allFormats {
		f.Add(makeTar(f, format, []entry{file("a.jpg", "x"), file("a.cls", "1"), file("b.txt", body(61, 600))}))
	}
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		data := makeTar(f, format, []entry{{name: "d/", typ: tar.TypeDir}, file("d/"+long+".json", "{}"), file("é.Σ", "")})
		f.Add(data)
		f.Add(gz(f, data))
		f.Add(data[:len(data)/2])
	}
	f.Add(makeTar(f, tar.FormatPAX, []entry{{name: "g", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "c"}}, file("k.a", "1")}))
	f.Add([]byte{})
	f.Add(make([]byte, 2*blockSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		data, err := DecompressLimit(in, fuzzLimit)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge)) {
				t.Fatalf("Decompress error %v is not a corrupt or too-large *Error", err)
			}
			data = in
		}
		samples, err := IndexBytes(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupported)) {
				t.Fatalf("error %v is not a corrupt or unsupported *Error", err)
			}
			if e.Offset < 0 || e.Offset > int64(len(data)) {
				t.Fatalf("error offset %d outside the %d bytes: %v", e.Offset, len(data), err)
			}
			return
		}
		if err := Validate(samples, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		next := int64(blockSize) // the earliest a field's data can start
		for _, s := range samples {
			if s.Key == "" || len(s.Fields) == 0 {
				t.Fatalf("empty key or sample: %s", describe([]Sample{s}))
			}
			for _, fl := range s.Fields {
				if fl.Offset < next || fl.Offset%blockSize != 0 {
					t.Fatalf("field %q at %d: want a block boundary at or after %d", fl.Name, fl.Offset, next)
				}
				next = alignUp(fl.Offset+fl.Size) + blockSize
			}
		}
		streamed, err := Index(iotest.HalfReader(bytes.NewReader(data)))
		if err != nil || !reflect.DeepEqual(streamed, samples) {
			t.Fatalf("streaming gives %v, %s; want %s", err, describe(streamed), describe(samples))
		}
	})
}

// fuzzLimit bounds what one fuzz input may inflate to, so that a bomb the
// fuzzer finds costs a fuzz worker little memory.
const fuzzLimit = 16 << 20

// FuzzDecompress feeds DecompressLimit arbitrary bytes and a limit: it must
// not panic, must fail only with a corrupt or too-large *Error, must never
// return more than the limit, and must agree with itself at the edge: the
// bytes it returns pass with exactly their length as the limit, and one
// byte less is ErrTooLarge at that offset.
func FuzzDecompress(f *testing.F) {
	text := []byte(body(62, 3000) + strings.Repeat("compressible ", 200))
	f.Add(gz(f, text), uint32(1<<20))
	f.Add(gz(f, text), uint32(len(text)))
	f.Add(gz(f, text), uint32(len(text)-1))
	f.Add(cat(gz(f, text[:10]), make([]byte, 20), gz(f, text[10:])), uint32(5000))
	f.Add(gzBomb(f, 4<<20), uint32(1<<20))
	f.Add(text, uint32(100))
	f.Add([]byte{0x1f, 0x8b}, uint32(10))
	f.Fuzz(func(t *testing.T, in []byte, limit32 uint32) {
		limit := int64(limit32)%fuzzLimit + 1
		out, err := DecompressLimit(in, limit)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge)) {
				t.Fatalf("error %v is not a corrupt or too-large *Error", err)
			}
			if errors.Is(err, ErrTooLarge) && e.Offset != limit {
				t.Fatalf("too large at offset %d, limit %d", e.Offset, limit)
			}
			return
		}
		if int64(len(out)) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		again, err := DecompressLimit(in, int64(len(out)))
		if len(out) > 0 && (err != nil || !bytes.Equal(again, out)) {
			t.Fatalf("with its own length %d as the limit: %d bytes, %v", len(out), len(again), err)
		}
		if len(out) > 1 {
			_, err := DecompressLimit(in, int64(len(out))-1)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("with a limit one under its %d bytes: %v, want ErrTooLarge", len(out), err)
			}
		}
	})
}

// benchShard writes a shard of n samples, each a "jpg" of size bytes, a
// "cls" and a "json".
func benchShard(b *testing.B, n, size int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	jpg := []byte(body(71, size))
	for i := range n {
		for _, f := range []struct {
			ext  string
			data []byte
		}{{"jpg", jpg}, {"cls", []byte("42")}, {"json", []byte(`{"caption":"a cat on a mat"}`)}} {
			hdr := &tar.Header{Name: fmt.Sprintf("train/%08d.%s", i, f.ext), Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(1, 0)}
			if err := tw.WriteHeader(hdr); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(f.data); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// tarNext is the baseline: archive/tar walking the same bytes through a
// reader that is not an io.Seeker, which any indexer that checks every byte
// pays.
func tarNext(data []byte) error {
	tr := tar.NewReader(struct{ io.Reader }{bytes.NewReader(data)})
	for {
		if _, err := tr.Next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// BenchmarkIndex reports IndexBytes's throughput on shards of large and of
// small samples, and ("x-tar.Next") its fastest run as a multiple of the
// fastest of the tarNext baseline's runs, measured in the same run: minimums,
// because a busy machine makes means wander.
func BenchmarkIndex(b *testing.B) {
	for _, shape := range []struct {
		name    string
		n, size int
	}{{"100KB-images", 300, 100 << 10}, {"1KB-samples", 10000, 1 << 10}} {
		b.Run(shape.name, func(b *testing.B) {
			data := benchShard(b, shape.n, shape.size)
			base := time.Duration(1<<63 - 1)
			for range 5 {
				start := time.Now()
				if err := tarNext(data); err != nil {
					b.Fatal(err)
				}
				base = min(base, time.Since(start))
			}
			fastest := time.Duration(1<<63 - 1)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				start := time.Now()
				if _, err := IndexBytes(data); err != nil {
					b.Fatal(err)
				}
				fastest = min(fastest, time.Since(start))
			}
			b.ReportMetric(float64(fastest)/float64(base), "x-tar.Next")
		})
	}
}
