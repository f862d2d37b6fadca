package dataset

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

func TestPickFormat(t *testing.T) {
	objs := func(names ...string) []storage.Object {
		var out []storage.Object
		for _, n := range names {
			out = append(out, storage.Object{URL: "s3://b/" + n})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		format shuffle.Format
		objs   []storage.Object
		want   shuffle.Format
		kept   []string
		err    error
	}{
		{"tars", "", objs("a.tar", "b.tgz"), shuffle.FormatWebDataset, []string{"a.tar", "b.tgz"}, nil},
		{"tars win over parquet", "", objs("a.tar", "b.parquet"), shuffle.FormatWebDataset, []string{"a.tar"}, nil},
		{"parquet", "", objs("a.parquet", "b.pq"), shuffle.FormatParquet, []string{"a.parquet", "b.pq"}, nil},
		{"feather is arrow", "", objs("a.feather", "b.arrow"), shuffle.FormatArrow, []string{"a.feather", "b.arrow"}, nil},
		{"stream", "", objs("a.arrows"), shuffle.FormatArrowStream, []string{"a.arrows"}, nil},
		{"two columnar formats", "", objs("a.parquet", "b.arrow"), "", nil, storage.ErrBadURL},
		{"format picks", shuffle.FormatArrow, objs("a.parquet", "b.arrow"), shuffle.FormatArrow, []string{"b.arrow"}, nil},
		{"no extension, format given", shuffle.FormatParquet, objs("blob"), shuffle.FormatParquet, []string{"blob"}, nil},
		{"no extension, no format", "", objs("blob"), shuffle.FormatWebDataset, []string{"blob"}, nil},
		{"one object of another extension", shuffle.FormatParquet, objs("x.arrow"), shuffle.FormatParquet, []string{"x.arrow"}, nil},
		{"nothing of the format", shuffle.FormatArrowStream, objs("a.parquet", "b.parquet"), "", nil, storage.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept, f, err := pickFormat("s3://b/", tc.format, tc.objs)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || f != tc.want {
				t.Fatalf("got %q, %v; want %q", f, err, tc.want)
			}
			var names []string
			for _, o := range kept {
				names = append(names, strings.TrimPrefix(o.URL, "s3://b/"))
			}
			if !slices.Equal(names, tc.kept) {
				t.Fatalf("kept %v, want %v", names, tc.kept)
			}
		})
	}
}

func TestObjectKey(t *testing.T) {
	whole := storage.Object{URL: "s3://b/x.parquet", Size: 100, ETag: "e"}
	u1 := storage.Object{URL: "s3://b/x.parquet", Size: 100, ETag: "e", Offset: 4, Length: 40}
	u2 := storage.Object{URL: "s3://b/x.parquet", Size: 100, ETag: "e", Offset: 44, Length: 40}
	if whole.Key() == u1.Key() || u1.Key() == u2.Key() || u1.Key().ETag != "e" {
		t.Fatalf("keys collide: %v %v %v", whole.Key(), u1.Key(), u2.Key())
	}
	if whole.Bytes() != 100 || u1.Bytes() != 40 {
		t.Fatalf("bytes %d, %d; want 100, 40", whole.Bytes(), u1.Bytes())
	}
}
