package server

import (
	"context"
	"fmt"
	"os"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// extentSource turns the fields of samples whose shard is in the disk
// tier into extents of the cache file (GPUDirect Storage, or a local
// client's mapping of the file), pinning each file while the message's
// lease lives.
type extentSource struct {
	cache *cache.Cache
	ds    *dataset.Dataset
	// unread are the samples of the step being sent that sample took
	// without reading their bytes, each with its file pinned.
	unread map[*prefetch.SampleData]diskFile
}

// diskFile is a pinned disk-tier file: its path, where the shard's bytes
// start in it, and the pin's release.
type diskFile struct {
	path  string
	base  int64
	unpin func()
}

// sampleFieldBytes is the bytes of sample j's fields by index x.
func sampleFieldBytes(x *wds.ShardIndex, j int) int64 {
	n := int64(0)
	for f := range x.NumFields(j) {
		n += x.Field(j, f).Size
	}
	return n
}

// sample returns the sample at position pos of ps (plan's order) without
// its bytes when its shard is in the disk tier and not in memory: its
// fields will go as extents of the pinned file, which the server need
// not read (reading and checking them had been most of its work in a warm
// epoch from disk). It returns nil, having built nothing, when the sample
// is to be read as usual. The caller hands the step's samples to place,
// which takes over the pins.
func (x *extentSource) sample(ctx context.Context, ps *prefetch.Stream, plan *shuffle.Plan, pos int) (*prefetch.SampleData, error) {
	if x == nil {
		return nil, nil
	}
	key := x.ds.Key(int(plan.At(pos).Shard))
	if x.cache.Contains(key) != cache.TierDisk {
		return nil, nil // in memory (or the shared tier), or not cached
	}
	path, base, size, unpin, ok := x.cache.DiskExtent(key)
	if !ok {
		return nil, nil // evicted meanwhile, or found bad
	}
	d, err := ps.Meta(ctx, pos)
	if err != nil {
		unpin()
		return nil, err
	}
	j := int(d.Ref.Sample)
	if lo, hi := d.Index.Span(j); lo < 0 || hi > size {
		unpin()
		return nil, &storage.Error{Op: "read", Object: key.Object, Kind: storage.ErrCorrupt,
			Err: fmt.Errorf("sample %q: its index puts its bytes at [%d, %d), outside the %d cached", d.Key, lo, hi, size)}
	}
	d.Tier = cache.TierDisk
	x.cache.CountDiskHit() // read by the client, from the file
	if x.unread == nil {
		x.unread = map[*prefetch.SampleData]diskFile{}
	}
	x.unread[d] = diskFile{path: path, base: base, unpin: unpin}
	return d, nil
}

// take moves the samples among samples that sample took unread to the
// returned map (nil when there are none), with their pinned files, and
// returns their fields' bytes too: place hands the pins to the message's
// lease, or reads the bytes on the copy path.
func (x *extentSource) take(samples []*prefetch.SampleData) (map[*prefetch.SampleData]diskFile, int) {
	if x == nil || len(x.unread) == 0 {
		return nil, 0
	}
	var taken map[*prefetch.SampleData]diskFile
	n := 0
	for _, d := range samples {
		if fl, ok := x.unread[d]; ok {
			if taken == nil {
				taken = map[*prefetch.SampleData]diskFile{}
			}
			taken[d] = fl
			delete(x.unread, d)
			n += int(sampleFieldBytes(d.Index, int(d.Ref.Sample)))
		}
	}
	return taken, n
}

// read gives the samples taken unread their fields' bytes, read from
// their pinned files: for the copy path, where the message carries the
// bytes.
func (x *extentSource) read(taken map[*prefetch.SampleData]diskFile) error {
	for d, fl := range taken {
		f, err := os.Open(fl.path)
		if err != nil {
			return err
		}
		for i := range d.Fields {
			loc := d.Index.Field(int(d.Ref.Sample), i)
			b := make([]byte, loc.Size)
			if _, err = f.ReadAt(b, fl.base+loc.Offset); err != nil {
				break
			}
			d.Fields[i].Data = b
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("reading sample %s from the disk tier's %s: %w", d.Key, fl.path, err)
		}
	}
	return nil
}

// forget drops the pins of the unread samples among samples that no
// message took: a stream that ends mid-step.
func (x *extentSource) forget() {
	if x == nil {
		return
	}
	for d, fl := range x.unread {
		fl.unpin()
		delete(x.unread, d)
	}
}

// replace sets Field.Extent (and clears Data) for every field it can, and
// returns the pins taken (and those of taken, the samples sample took
// unread) and the field bytes moved out of the message; samples are msg's
// samples as the stream read them.
func (x *extentSource) replace(msg *stokerv1.StreamBatchesResponse, samples []*prefetch.SampleData,
	taken map[*prefetch.SampleData]diskFile) (unpins []func(), moved int) {
	files := map[int32]diskFile{} // by shard, pinned once per message
	for k, smp := range msg.Samples {
		d := samples[k]
		ref := d.Ref
		if fl, ok := taken[d]; ok {
			unpins = append(unpins, fl.unpin)
			for i, f := range smp.Fields {
				loc := d.Index.Field(int(ref.Sample), i)
				f.Extent = &stokerv1.FileExtent{Path: fl.path, Offset: uint64(fl.base + loc.Offset), Length: uint64(loc.Size)}
				f.Data = nil
			}
			continue
		}
		fl, seen := files[ref.Shard]
		if !seen {
			path, base, _, unpin, ok := x.cache.DiskExtent(x.ds.Key(int(ref.Shard)))
			if ok {
				unpins = append(unpins, unpin)
			}
			fl = diskFile{path: path, base: base, unpin: unpin}
			files[ref.Shard] = fl
		}
		if fl.unpin == nil {
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
