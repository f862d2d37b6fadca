package dataset

import (
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// A shard is named by one identity, storage.Object (an object version and,
// for a columnar unit, its byte range: what is fetched and cached), held
// in three other forms by the layers that may not import storage or that
// store it: the manifest's shuffle.Shard (shuffle is pure), a columnar
// index's columnar.Unit (stored on disk with the object's index), and the
// wire's stokerv1.Shard. The conversions between the first three are
// these; the wire's are the server's (server/shard.go).

// manifestShard is o as a shard of a manifest, with n samples; part is a
// unit's number in its object, 0 for a whole object.
func manifestShard(o storage.Object, n, part int) shuffle.Shard {
	return shuffle.Shard{Object: o.URL, Size: o.Size, ETag: o.ETag, Samples: n, Part: part, Offset: o.Offset, Length: o.Length}
}

// shardObject is manifest shard s as a Source object.
func shardObject(s shuffle.Shard) storage.Object {
	return storage.Object{URL: s.Object, Size: s.Size, ETag: s.ETag, Offset: s.Offset, Length: s.Length}
}

// unitObject is unit u of object o: o narrowed to u's byte range.
func unitObject(o storage.Object, u columnar.Unit) storage.Object {
	o.Offset, o.Length = u.Offset, u.Length
	return o
}

// shardUnit is manifest shard s, a unit, as its columnar index names it.
func shardUnit(s shuffle.Shard) columnar.Unit {
	return columnar.Unit{Part: s.Part, Offset: s.Offset, Length: s.Length, Rows: int64(s.Samples)}
}
