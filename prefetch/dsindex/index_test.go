package dsindex

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// synthDataset writes n synthetic shards into a new folder and returns the
// folder and its shards as a file source lists them.
func synthDataset(t *testing.T, n int) (string, []storage.Object) {
	t.Helper()
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: n, PerShard: 7, SampleSize: 300, Seed: 1}).Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir, list(t, dir)
}

func list(t *testing.T, dir string) []storage.Object {
	t.Helper()
	objs, err := dataset.Resolve(context.Background(), storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), "file://"+dir+"/")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// indexAll indexes every shard as stoker index does.
func indexAll(t *testing.T, objs []storage.Object) []Shard {
	t.Helper()
	out := make([]Shard, len(objs))
	for i, o := range objs {
		data, err := storage.Fetch(context.Background(), storage.NewFileSource(), o, storage.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		x, err := wds.IndexShard(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = Shard{Object: o, Samples: x.Len(), Index: x}
	}
	return out
}

// write builds and saves the index of shards in dir.
func write(t *testing.T, dir string, shards []Shard) *Index {
	t.Helper()
	src := storage.NewFileSource()
	x, blob, err := Build("file://"+dir+"/"+IndexName, "test", shards)
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(context.Background(), src, src, x, blob); err != nil {
		t.Fatal(err)
	}
	return x
}

// TestRoundTrip writes an index, loads it for the same shards, and reads
// every shard's compact index back.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := storage.NewFileSource()
	dir, objs := synthDataset(t, 4)
	shards := indexAll(t, objs)
	written := write(t, dir, shards)
	url := Locate("file://"+dir+"/", objs)
	if url != "file://"+dir+"/"+IndexName {
		t.Fatalf("Locate = %s", url)
	}
	x, ok, why, err := Load(ctx, src, url, objs)
	if err != nil || !ok {
		t.Fatalf("Load: ok %v, %s, %v", ok, why, err)
	}
	if !reflect.DeepEqual(x, written) {
		t.Fatalf("loaded %+v\nwritten %+v", x, written)
	}
	for i, o := range objs {
		if x.Entries[i].URL != o.URL || x.Entries[i].Samples != 7 {
			t.Errorf("entry %d: %+v, want %s with 7 samples", i, x.Entries[i], o.URL)
		}
		si, err := ReadShard(ctx, src, x, i)
		if err != nil {
			t.Fatal(err)
		}
		if !si.Equal(shards[i].Index) {
			t.Errorf("shard %d: the compact index read back differs", i)
		}
	}
	// The JSON names shards relative to its folder, as wids expects.
	data, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"url": "train-000000.tar"`)) || !bytes.Contains(data, []byte(`"__kind__": "wids-shard-index-v1"`)) {
		t.Errorf("index JSON lacks a relative url or the kind:\n%.600s", data)
	}
	// A subset of the shards (a brace range) loads in its own order.
	sub := []storage.Object{objs[2], objs[0]}
	x, ok, why, err = Load(ctx, src, url, sub)
	if err != nil || !ok || len(x.Entries) != 2 || x.Entries[0].URL != objs[2].URL || x.Entries[1].URL != objs[0].URL {
		t.Fatalf("Load of a subset: ok %v %s %v: %+v", ok, why, err, x)
	}
}

// TestLoadStale lists what makes an index unusable for a dataset, each
// reported as not ok with a reason and no error.
func TestLoadStale(t *testing.T) {
	ctx := context.Background()
	src := storage.NewFileSource()
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, objs []storage.Object) []storage.Object
		why    string
	}{
		{"no index", func(t *testing.T, dir string, objs []storage.Object) []storage.Object {
			if err := os.Remove(filepath.Join(dir, IndexName)); err != nil {
				t.Fatal(err)
			}
			return objs
		}, "no dataset index"},
		{"shard resized", func(t *testing.T, dir string, objs []storage.Object) []storage.Object {
			appendTo(t, filepath.Join(dir, "train-000001.tar"), make([]byte, 512))
			return list(t, dir)
		}, "train-000001.tar has"},
		{"shard rewritten, same size", func(t *testing.T, dir string, objs []storage.Object) []storage.Object {
			p := filepath.Join(dir, "train-000002.tar")
			if err := os.Chtimes(p, time.Time{}, time.Unix(1, 0)); err != nil {
				t.Fatal(err)
			}
			return list(t, dir)
		}, "train-000002.tar has ETag"},
		{"shard added", func(t *testing.T, dir string, objs []storage.Object) []storage.Object {
			if err := (wds.Synthetic{Shards: 4, PerShard: 2, SampleSize: 10, Seed: 2}).Write(filepath.Join(dir, "more")); err != nil {
				t.Fatal(err)
			}
			return list(t, dir)
		}, "does not list"},
		{"corrupt JSON", func(t *testing.T, dir string, objs []storage.Object) []storage.Object {
			appendTo(t, filepath.Join(dir, IndexName), []byte("}"))
			return objs
		}, "corrupt"},
		{"neither size nor ETag", func(t *testing.T, dir string, objs []storage.Object) []storage.Object {
			rewrite(t, filepath.Join(dir, IndexName), func(s string) string {
				s = strings.ReplaceAll(s, `"filesize"`, `"was_filesize"`)
				return strings.ReplaceAll(s, `"etag"`, `"was_etag"`)
			})
			return objs
		}, "neither the size nor the ETag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, objs := synthDataset(t, 3)
			write(t, dir, indexAll(t, objs))
			objs = tc.change(t, dir, objs)
			x, ok, why, err := Load(ctx, src, "file://"+dir+"/"+IndexName, objs)
			if err != nil || ok || x != nil || !strings.Contains(why, tc.why) {
				t.Fatalf("Load = %v, ok %v, why %q, err %v; want not ok because %q", x, ok, why, err, tc.why)
			}
		})
	}
	// A shard deleted since does not spoil the index for the others.
	dir, objs := synthDataset(t, 3)
	write(t, dir, indexAll(t, objs))
	if err := os.Remove(filepath.Join(dir, "train-000001.tar")); err != nil {
		t.Fatal(err)
	}
	x, ok, why, err := Load(ctx, src, "file://"+dir+"/"+IndexName, list(t, dir))
	if err != nil || !ok || len(x.Entries) != 2 {
		t.Fatalf("after a shard was deleted: ok %v %q %v %+v", ok, why, err, x)
	}
	// A storage error is an error, not a stale index.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok, _, err := Load(cctx, src, "file://"+dir+"/"+IndexName, objs); ok || !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Load with a cancelled ctx: ok %v, err %v; want ErrUnavailable", ok, err)
	}
}

// TestReadShardDamage checks a damaged blob: rewritten (ErrChanged through
// its ETag), and damaged where its ETag is not recorded (ErrCorrupt through
// the checksum).
func TestReadShardDamage(t *testing.T) {
	ctx := context.Background()
	src := storage.NewFileSource()
	dir, objs := synthDataset(t, 2)
	x := write(t, dir, indexAll(t, objs))
	damageSlice(t, dir, x, 1)
	if _, err := ReadShard(ctx, src, x, 0); !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("ReadShard of a rewritten blob = %v, want ErrChanged", err)
	}
	x.Blob.ETag = ""
	if _, err := ReadShard(ctx, src, x, 0); err != nil {
		t.Fatalf("the undamaged slice: %v", err)
	}
	_, err := ReadShard(ctx, src, x, 1)
	var e *storage.Error
	if !errors.As(err, &e) || !errors.Is(err, storage.ErrCorrupt) || e.Object != objs[1].URL || !strings.Contains(err.Error(), "crc32c") {
		t.Fatalf("ReadShard of the damaged slice = %v, want ErrCorrupt naming %s and the checksum", err, objs[1].URL)
	}
	x.Entries[0].IndexLength = 0
	if _, err := ReadShard(ctx, src, x, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("ReadShard of an entry without a slice = %v, want ErrNotFound", err)
	}
}

func appendTo(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func rewrite(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(data))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// countingSource counts the ranged reads made through it.
type countingSource struct {
	storage.Source
	reads int
}

func (c *countingSource) ReadAt(ctx context.Context, o storage.Object, buf []byte, off int64) error {
	c.reads++
	return c.Source.ReadAt(ctx, o, buf, off)
}

// TestReadShards reads several shards' compact indexes in one joined
// read, each equal to what ReadShard gives, and checks that a damaged
// slice, an entry without one and an entry out of range fail alone.
func TestReadShards(t *testing.T) {
	ctx := context.Background()
	src := &countingSource{Source: storage.NewFileSource()}
	dir, objs := synthDataset(t, 6)
	shards := indexAll(t, objs)
	x := write(t, dir, shards)
	is := []int{4, 1, 3}
	out, errs := ReadShards(ctx, src, x, is)
	if src.reads != 1 {
		t.Errorf("ReadShards of 3 slices close together made %d reads, want 1", src.reads)
	}
	for j, i := range is {
		if errs[j] != nil || !out[j].Equal(shards[i].Index) {
			t.Errorf("shard %d: err %v, or its index differs from the shard's", i, errs[j])
		}
	}

	damageSlice(t, dir, x, 3)
	x.Blob.ETag = "" // the damage is found by the checksum, not the ETag
	x.Entries[5].IndexLength = 0
	is = []int{5, 3, 0, 99}
	out, errs = ReadShards(ctx, src, x, is)
	var e *storage.Error
	switch {
	case !errors.Is(errs[0], storage.ErrNotFound):
		t.Errorf("entry without a slice: %v, want ErrNotFound", errs[0])
	case !errors.As(errs[1], &e) || !errors.Is(errs[1], storage.ErrCorrupt) || e.Object != objs[3].URL:
		t.Errorf("damaged slice: %v, want ErrCorrupt naming %s", errs[1], objs[3].URL)
	case errs[2] != nil || !out[2].Equal(shards[0].Index):
		t.Errorf("undamaged slice read with a damaged one: %v", errs[2])
	case !errors.Is(errs[3], storage.ErrNotFound):
		t.Errorf("entry out of range: %v, want ErrNotFound", errs[3])
	}
}

// damageSlice flips a bit in entry i's slice of the blob in dir.
func damageSlice(t *testing.T, dir string, x *Index, i int) {
	t.Helper()
	blob := filepath.Join(dir, BlobName)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[x.Entries[i].IndexOffset+3] ^= 0x40
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
