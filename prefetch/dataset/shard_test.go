package dataset

import (
	"testing"

	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// A shard goes from a storage object to the manifest and back unchanged,
// a unit's byte range and rows included, and a unit's cache key names its
// range (another unit of the same object is another key).
func TestShardForms(t *testing.T) {
	o := storage.Object{URL: "s3://b/a.parquet", Size: 1000, ETag: "e1"}
	u := columnar.Unit{Part: 2, Offset: 300, Length: 200, Rows: 17}
	uo := unitObject(o, u)
	s := manifestShard(uo, int(u.Rows), u.Part)
	if got := shardObject(s); got != uo {
		t.Errorf("unit shard's object %+v, want %+v", got, uo)
	}
	if got := shardUnit(s); got != u {
		t.Errorf("unit shard's unit %+v, want %+v", got, u)
	}
	if s.Samples != 17 || s.Part != 2 {
		t.Errorf("manifest shard %+v: want 17 samples, part 2", s)
	}
	if uo.Key() == o.Key() || uo.Key() == unitObject(o, columnar.Unit{Offset: 500, Length: 200}).Key() || uo.Bytes() != 200 {
		t.Errorf("unit key %v (object's %v), bytes %d", uo.Key(), o.Key(), uo.Bytes())
	}
	tar := storage.Object{URL: "s3://b/a.tar", Size: 1000, ETag: "e2"}
	if got := shardObject(manifestShard(tar, 0, 0)); got != tar {
		t.Errorf("whole shard's object %+v, want %+v", got, tar)
	}
}
