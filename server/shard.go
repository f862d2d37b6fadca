package server

import (
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// shardProto is o, a shard's identity (an object version and, for a
// columnar unit, its byte range), as the wire's Shard; shardObject is the
// way back. The one conversion between the two: the others of a shard's
// forms are prefetch/dataset's (shard.go).
func shardProto(o storage.Object) *stokerv1.Shard {
	return &stokerv1.Shard{Object: o.URL, Size: o.Size, Etag: o.ETag, Offset: o.Offset, Length: o.Length}
}

// shardObject is the storage object a wire Shard names (unchecked: see
// Server.checkShard).
func shardObject(sh *stokerv1.Shard) storage.Object {
	return storage.Object{URL: sh.GetObject(), Size: sh.GetSize(), ETag: sh.GetEtag(), Offset: sh.GetOffset(), Length: sh.GetLength()}
}
