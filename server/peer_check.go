package server

import (
	"fmt"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Bounds on what another node (or anyone holding the token) may ask of the
// Peer service: each shard named is fetched into memory whole, so its
// size is bounded before anything is allocated.
const (
	maxHintShards  = 1 << 20 // shards in one Warm request
	maxHintIDBytes = 128
	maxETagBytes   = 1024
	minShardLimit  = 1 << 30 // the smallest bound on one shard's size, whatever the memory tier
)

// maxShardBytes bounds the size of a shard another node names: the memory
// tier's size (a shard larger than it is not cached in memory anyway), at
// least 1 GiB. A node refused falls back to reading storage itself.
func (s *Server) maxShardBytes() int64 {
	return max(s.cfg.Cache.MemoryBytes, minShardLimit)
}

// checkShard checks a shard named on the wire before it is fetched: the
// server may read its URL, its size and unit range are within bounds and
// consistent. field names it in the request.
func (s *Server) checkShard(field string, o storage.Object) error {
	switch limit := s.maxShardBytes(); {
	case o.URL == "":
		return invalid(field+".object", "is empty")
	case len(o.ETag) > maxETagBytes:
		return invalid(field+".etag", fmt.Sprintf("is %d bytes, over %d", len(o.ETag), maxETagBytes))
	case o.Size < 0 || o.Size > limit:
		return invalid(field+".size", fmt.Sprintf("%d is outside [0, %d] (the largest shard this node serves to others)", o.Size, limit))
	case o.Offset < 0 || o.Length < 0:
		return invalid(field+".unit", fmt.Sprintf("range [%d, +%d) is negative", o.Offset, o.Length))
	case o.Length > 0 && o.Offset > o.Size-o.Length:
		return invalid(field+".unit", fmt.Sprintf("range [%d, +%d) is outside the object's %d bytes", o.Offset, o.Length, o.Size))
	}
	if err := s.sources.Allowed(o.URL); err != nil {
		return toStatus(err)
	}
	return nil
}

// shardRange checks a ReadShard range against a shard of total bytes and
// returns its end; length 0 means to the end.
func shardRange(off, n, total int64) (int64, error) {
	if off < 0 || off > total || n < 0 || n > total-off {
		return 0, invalid("offset", fmt.Sprintf("range [%d, +%d) is outside the shard's %d bytes", off, n, total))
	}
	if n == 0 {
		return total, nil
	}
	return off + n, nil
}
