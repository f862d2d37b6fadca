package server

import (
	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// extentSource turns the fields of samples whose shard is in the disk
// tier into extents of the cache file (GPUDirect Storage: the client reads
// them with cuFile), pinning each file while the message's lease lives.
type extentSource struct {
	cache *cache.Cache
	ds    *dataset.Dataset
}

// replace sets Field.Extent (and clears Data) for every field it can, and
// returns the pins taken and the field bytes moved out of the message;
// samples are msg's samples as the stream read them.
func (x *extentSource) replace(msg *stokerv1.StreamBatchesResponse, samples []*prefetch.SampleData) (unpins []func(), moved int) {
	type file struct {
		path string
		base int64
		ok   bool
	}
	files := map[int32]file{} // by shard, pinned once per message
	for k, smp := range msg.Samples {
		d := samples[k]
		ref := d.Ref
		fl, seen := files[ref.Shard]
		if !seen {
			path, base, unpin, ok := x.cache.DiskExtent(x.ds.Key(int(ref.Shard)))
			if ok {
				unpins = append(unpins, unpin)
			}
			fl = file{path, base, ok}
			files[ref.Shard] = fl
		}
		if !fl.ok {
			continue // not on disk: its bytes go through the region
		}
		for i, f := range smp.Fields {
			if f.ShmTier {
				continue // in the shared memory tier already: no disk read
			}
			n := len(f.Data)
			f.Extent = &stokerv1.FileExtent{Path: fl.path, Offset: uint64(fl.base + d.Index.Field(int(ref.Sample), i).Offset), Length: uint64(n)}
			f.Data = nil
			moved += n
		}
	}
	return unpins, moved
}
