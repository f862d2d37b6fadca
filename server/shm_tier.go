package server

import (
	"unsafe"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// tierSource hands out fields whose bytes lie in the shared memory tier as
// offsets into it: the client reads the cache's own pages, and the
// message's lease pins each shard in the tier until released.
type tierSource struct {
	region *stokerv1.ShmRegion // what the client maps
	mem    []byte              // the tier's region
	cache  *cache.Cache
	ds     *dataset.Dataset
}

// replace points every field it can into the tier (ShmTier, ShmOffset,
// ShmLength; Data cleared) and returns the pins taken and the field bytes
// moved out of the message.
func (x *tierSource) replace(msg *stokerv1.StreamBatchesResponse, samples []*prefetch.SampleData) (unpins []func(), moved int) {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(x.mem)))
	limit := base + uintptr(len(x.mem))
	pins := map[int32]bool{} // by shard: pinned for this message (true), or not in the tier
	for k, smp := range msg.Samples {
		shard := samples[k].Ref.Shard
		for _, f := range smp.Fields {
			n := len(f.Data)
			if n == 0 {
				continue
			}
			p := uintptr(unsafe.Pointer(unsafe.SliceData(f.Data)))
			if p < base || p+uintptr(n) > limit {
				continue // from a fetch or the disk: not the tier's bytes
			}
			ok, seen := pins[shard]
			if !seen {
				// The stream's own Ref holds the entry these bytes are in, so
				// the key still names it.
				var r *cache.Ref
				if r, ok = x.cache.Pin(x.ds.Key(int(shard))); ok {
					unpins = append(unpins, r.Release)
				}
				pins[shard] = ok
			}
			if !ok {
				continue
			}
			f.ShmTier, f.ShmOffset, f.ShmLength, f.Data = true, uint64(p-base), uint64(n), nil
			moved += n
		}
	}
	return unpins, moved
}
