package columnar

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stoker-data/stoker/shuffle"
)

var fuzzFormats = []shuffle.Format{shuffle.FormatParquet, shuffle.FormatArrow, shuffle.FormatArrowStream}

// indexAndDecode runs the readers of outside bytes: it must return an
// index whose units lie inside the object, or an error, never panic.
func indexAndDecode(t *testing.T, f shuffle.Format, data []byte) error {
	ctx := context.Background()
	ix, err := IndexObject(ctx, f, &bytesReader{data: data}, int64(len(data)))
	if err != nil {
		return err
	}
	for _, u := range ix.Units {
		if u.Offset < 0 || u.Length <= 0 || u.Offset+u.Length > int64(len(data)) || u.Rows <= 0 {
			t.Fatalf("unit %+v outside the %d-byte object", u, len(data))
		}
		if u.Rows > 1<<16 {
			continue // a claimed count this large decodes for long: not a parser bug
		}
		rec, err := ix.Decode(ctx, u, data[u.Offset:u.Offset+u.Length], nil)
		if err != nil {
			return err
		}
		rec.Release()
	}
	return nil
}

func FuzzIndex(f *testing.F) {
	for name, data := range fixtures(f) {
		k := byte(0)
		switch formatOf(name) {
		case shuffle.FormatArrow:
			k = 1
		case shuffle.FormatArrowStream:
			k = 2
		}
		f.Add(k, data)
		f.Add(k, data[len(data)/2:])
	}
	recs := syntheticRecs(3, 2)
	for k, w := range []func() ([]byte, error){
		func() ([]byte, error) { return WriteParquet(recs, 0) },
		func() ([]byte, error) { return WriteArrowFile(recs) },
		func() ([]byte, error) { return WriteArrowStream(recs) },
	} {
		b, err := w()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(k), b)
	}
	f.Fuzz(func(t *testing.T, k byte, data []byte) {
		_ = indexAndDecode(t, fuzzFormats[int(k)%len(fuzzFormats)], data)
	})
}

// Bad bytes give an *Error saying what is wrong, never a panic.
func TestBadInput(t *testing.T) {
	fx := fixtures(t)
	flip := func(b []byte, from, to int) []byte {
		b = bytes.Clone(b)
		for i := max(from, 0); i < min(to, len(b)); i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	pq, af, as := fx["default.parquet"], fx["batches.arrow"], fx["stream.arrows"]
	for _, tc := range []struct {
		name string
		f    shuffle.Format
		data []byte
		want string
	}{
		{"text as parquet", shuffle.FormatParquet, bytes.Repeat([]byte("not parquet "), 50), "no Parquet magic"},
		{"truncated parquet", shuffle.FormatParquet, pq[:len(pq)-100], "no Parquet magic"},
		{"parquet footer garbled", shuffle.FormatParquet, flip(pq, len(pq)-3000, len(pq)-8), "parquet"},
		{"parquet footer length wrong", shuffle.FormatParquet, flip(pq, len(pq)-8, len(pq)-5), "footer length"},
		{"tiny parquet", shuffle.FormatParquet, []byte("PAR1"), "too small"},
		{"parquet as arrow", shuffle.FormatArrow, pq, "no Arrow magic"},
		{"truncated arrow file", shuffle.FormatArrow, af[:len(af)-7], "no Arrow magic"},
		{"arrow footer garbled", shuffle.FormatArrow, flip(af, len(af)-400, len(af)-10), "arrow"},
		{"arrow file as stream", shuffle.FormatArrowStream, af, "an Arrow IPC file, not a stream"},
		{"truncated stream", shuffle.FormatArrowStream, as[:len(as)-1000], "truncated"},
		{"text as stream", shuffle.FormatArrowStream, bytes.Repeat([]byte("not arrow "), 50), "arrows"},
		{"empty stream", shuffle.FormatArrowStream, nil, "no schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := indexAndDecode(t, tc.f, tc.data)
			var ce *Error
			if !errors.As(err, &ce) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("got %v; want a *columnar.Error saying %q", err, tc.want)
			}
		})
	}
}
