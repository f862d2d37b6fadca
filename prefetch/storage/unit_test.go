package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// noVersionSource is a real file source whose objects have no version,
// as a store without ETags would give them.
type noVersionSource struct{ Source }

func (s noVersionSource) Stat(ctx context.Context, url string) (Object, error) {
	o, err := s.Source.Stat(ctx, url)
	o.ETag = ""
	return o, err
}

// A unit of an object without a version is fetched with its own length:
// Fetch's Stat pins the version, never the size of the whole object.
func TestFetchUnitWithoutVersion(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 6000) // 96000 bytes
	path := filepath.Join(t.TempDir(), "x.parquet")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	src := noVersionSource{NewFileSource()}
	url := "file://" + path
	for _, opt := range []FetchOptions{{}, {PartSize: 4096, Parallel: 3}} {
		for _, u := range [][2]int64{{4, 90000}, {0, int64(len(data))}, {95999, 1}} {
			o := Object{URL: url, Size: int64(len(data)), Offset: u[0], Length: u[1]}
			got, err := FetchRange(context.Background(), src, o, opt)
			if err != nil {
				t.Fatalf("unit [%d,+%d), part %d: %v", u[0], u[1], opt.PartSize, err)
			}
			if !bytes.Equal(got, data[u[0]:u[0]+u[1]]) {
				t.Fatalf("unit [%d,+%d), part %d: %d bytes differ from the object's", u[0], u[1], opt.PartSize, len(got))
			}
		}
	}
	// The object shrank under a unit of the old version: changed, not a
	// read past its end.
	if err := os.WriteFile(path, data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := FetchRange(context.Background(), src, Object{URL: url, Offset: 4, Length: 90000}, FetchOptions{})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("unit beyond a shrunk object: %v, want ErrChanged", err)
	}
}
