package dsindex

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// An index as webdataset's widsindex writes it (no Stoker extension): its
// shards resolve against the JSON's folder, as wids resolves them.
func TestParseWids(t *testing.T) {
	data := `{"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": "imagenet",
	  "shardlist": [
	    {"url": "train-000000.tar", "nsamples": 1000, "filesize": 123456, "md5sum": "ignored"},
	    {"url": "sub/train-000001.tar", "nsamples": 999, "filesize": 1},
	    {"url": "../other/x.tar", "nsamples": 3, "filesize": 2},
	    {"url": "/abs/y.tar", "nsamples": 0, "filesize": 3},
	    {"url": "s3://elsewhere/z.tar", "nsamples": 5}
	  ]}`
	x, err := Parse("s3://bucket/data/train/wids-index.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{URL: "s3://bucket/data/train/train-000000.tar", Samples: 1000, Size: 123456},
		{URL: "s3://bucket/data/train/sub/train-000001.tar", Samples: 999, Size: 1},
		{URL: "s3://bucket/data/other/x.tar", Samples: 3, Size: 2},
		{URL: "s3://bucket/abs/y.tar", Samples: 0, Size: 3},
		{URL: "s3://elsewhere/z.tar", Samples: 5, Size: -1},
	}
	if x.Name != "imagenet" || !reflect.DeepEqual(x.Entries, want) || x.Blob != (Blob{}) {
		t.Fatalf("parsed %+v\nwant entries %+v", x, want)
	}
	objs := Shards(x)
	if len(objs) != 5 || objs[1] != (storage.Object{URL: want[1].URL, Size: 1}) || objs[4].Size != -1 {
		t.Fatalf("Shards = %+v", objs)
	}
	// Written back, it reads the same, URLs relative where they can be.
	out, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(x.URL, out)
	if err != nil || !reflect.DeepEqual(back, x) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, x)
	}
	if !strings.Contains(string(out), `"url": "sub/train-000001.tar"`) || !strings.Contains(string(out), `"url": "s3://bucket/data/other/x.tar"`) {
		t.Fatalf("written form:\n%s", out)
	}
	// file:// resolves the same way.
	x, err = Parse("file:///data/train/wids-index.json", []byte(`{"wids_version": 1, "shardlist": [{"url": "a.tar", "nsamples": 1, "filesize": 9}]}`))
	if err != nil || x.Entries[0].URL != "file:///data/train/a.tar" {
		t.Fatalf("file index: %v %+v", err, x)
	}
}

func TestParseRejects(t *testing.T) {
	entry := `{"url": "a.tar", "nsamples": 1, "filesize": 10}`
	blob := `"stoker": {"version": 1, "blob": "wids-index.stoker", "blob_size": 100}`
	tests := map[string]string{
		"not JSON":            `{"wids_version": 1, "shardlist": [`,
		"no wids_version":     `{"shardlist": [` + entry + `]}`,
		"wids_version 2":      `{"wids_version": 2, "shardlist": [` + entry + `]}`,
		"other kind":          `{"__kind__": "x", "wids_version": 1, "shardlist": [` + entry + `]}`,
		"no shards":           `{"wids_version": 1, "shardlist": []}`,
		"sub-datasets":        `{"wids_version": 1, "shardlist": [` + entry + `], "datasets": [{"source_url": "x.json"}]}`,
		"no url":              `{"wids_version": 1, "shardlist": [{"nsamples": 1}]}`,
		"control char in url": `{"wids_version": 1, "shardlist": [{"url": "a\n.tar", "nsamples": 1}]}`,
		"no nsamples":         `{"wids_version": 1, "shardlist": [{"url": "a.tar"}]}`,
		"negative nsamples":   `{"wids_version": 1, "shardlist": [{"url": "a.tar", "nsamples": -1}]}`,
		"fractional nsamples": `{"wids_version": 1, "shardlist": [{"url": "a.tar", "nsamples": 1.5}]}`,
		"huge nsamples":       `{"wids_version": 1, "shardlist": [{"url": "a.tar", "nsamples": 99999999999999}]}`,
		"negative filesize":   `{"wids_version": 1, "shardlist": [{"url": "a.tar", "nsamples": 1, "filesize": -5}]}`,
		"repeated shard":      `{"wids_version": 1, "shardlist": [` + entry + `, {"url": "./a.tar", "nsamples": 2}]}`,
		"slice without blob":  `{"wids_version": 1, "shardlist": [{"url": "a.tar", "nsamples": 1, "stoker": {"index_offset": 0, "index_length": 5, "index_crc32c": "00000000"}}]}`,
		"slice past blob":     `{"wids_version": 1, ` + blob + `, "shardlist": [{"url": "a.tar", "nsamples": 1, "stoker": {"index_offset": 90, "index_length": 11, "index_crc32c": "00000000"}}]}`,
		"negative slice":      `{"wids_version": 1, ` + blob + `, "shardlist": [{"url": "a.tar", "nsamples": 1, "stoker": {"index_offset": -1, "index_length": 5, "index_crc32c": "00000000"}}]}`,
		"offset overflows":    `{"wids_version": 1, ` + blob + `, "shardlist": [{"url": "a.tar", "nsamples": 1, "stoker": {"index_offset": 9223372036854775807, "index_length": 5, "index_crc32c": "00000000"}}]}`,
		"bad crc":             `{"wids_version": 1, ` + blob + `, "shardlist": [{"url": "a.tar", "nsamples": 1, "stoker": {"index_offset": 0, "index_length": 5, "index_crc32c": "xyz"}}]}`,
		"extension version":   `{"wids_version": 1, "stoker": {"version": 9, "blob": "b", "blob_size": 1}, "shardlist": [` + entry + `]}`,
		"too large":           `{"wids_version": 1, "name": "` + strings.Repeat("x", MaxJSONBytes) + `", "shardlist": [` + entry + `]}`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			x, err := Parse("s3://b/d/wids-index.json", []byte(data))
			var e *storage.Error
			if !errors.As(err, &e) || !errors.Is(err, storage.ErrCorrupt) || e.Object != "s3://b/d/wids-index.json" {
				t.Fatalf("Parse = %+v, %v; want an ErrCorrupt *prefetch.Error naming the index", x, err)
			}
		})
	}
}

func TestLocate(t *testing.T) {
	objs := func(urls ...string) []storage.Object {
		var out []storage.Object
		for _, u := range urls {
			out = append(out, storage.Object{URL: u})
		}
		return out
	}
	tests := []struct {
		dataset string
		objs    []storage.Object
		want    string
	}{
		{"s3://b/train/", objs("s3://b/train/a.tar", "s3://b/train/b.tar"), "s3://b/train/wids-index.json"},
		{"s3://b/train/", objs("s3://b/train/x/a.tar", "s3://b/train/y/b.tar"), "s3://b/train/wids-index.json"},
		{"s3://b/train/", objs("s3://b/train/x/a.tar", "s3://b/train/x/b.tar"), "s3://b/train/x/wids-index.json"},
		{"s3://b/train-{0..1}.tar", objs("s3://b/train-0.tar", "s3://b/train-1.tar"), "s3://b/wids-index.json"},
		{"s3://b/d/train-0.tar", objs("s3://b/d/train-0.tar"), "s3://b/d/wids-index.json"},
		{"s3://b/d/wids-index.json", objs("s3://b/d/train-0.tar"), "s3://b/d/wids-index.json"},
		{"file:///data/train/", objs("file:///data/train/a.tar", "file:///data/train/ab.tar"), "file:///data/train/wids-index.json"},
		{"file:///a.tar", objs("file:///a.tar"), "file:///wids-index.json"},
		{"s3://b/empty/", nil, "s3://b/empty/wids-index.json"},
	}
	for _, tc := range tests {
		if got := Locate(tc.dataset, tc.objs); got != tc.want {
			t.Errorf("Locate(%s, %d objects) = %s, want %s", tc.dataset, len(tc.objs), got, tc.want)
		}
	}
}

// FuzzParse feeds Parse arbitrary JSON: it must not panic, must fail only
// with an ErrCorrupt *storage.Error, and an index it accepts must have
// valid entries and read back equal from Marshal.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": "n", "shardlist": [{"url": "a.tar", "nsamples": 3, "filesize": 10}]}`))
	f.Add([]byte(`{"wids_version": 1, "stoker": {"version": 1, "blob": "wids-index.stoker", "blob_size": 100, "blob_etag": "\"e\""},
	  "shardlist": [{"url": "x/a.tar", "nsamples": 3, "filesize": 10, "stoker": {"etag": "\"q\"", "index_offset": 10, "index_length": 20, "index_crc32c": "0a0b0c0d"}},
	                {"url": "/b.tgz", "nsamples": 0, "stoker": {"etag": "1-2"}}, {"url": "s3://o/c.tar", "nsamples": 1}]}`))
	f.Add([]byte(`{"wids_version": 1, "shardlist": [{"url": "../../../a.tar", "nsamples": 1}, {"url": "a//b/./c.tar", "nsamples": 2}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := Parse("s3://bucket/dir/wids-index.json", data)
		if err != nil {
			var e *storage.Error
			if !errors.As(err, &e) || !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("error %v is not an ErrCorrupt *prefetch.Error", err)
			}
			return
		}
		if len(x.Entries) == 0 {
			t.Fatal("an index with no shards")
		}
		for _, e := range x.Entries {
			if !strings.Contains(e.URL, "://") || e.Samples < 0 || e.Size < -1 || e.IndexOffset < 0 || e.IndexLength < 0 ||
				(e.IndexLength > 0 && e.IndexOffset+e.IndexLength > x.Blob.Size) {
				t.Fatalf("bad entry %+v (blob %+v)", e, x.Blob)
			}
		}
		out, err := x.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(x.URL, out)
		if err != nil || !reflect.DeepEqual(back, x) {
			t.Fatalf("written back and parsed: %v\n%+v\n%+v\n%s", err, back, x, out)
		}
	})
}
