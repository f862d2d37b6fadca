package dsindex

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// castagnoli is the CRC-32C table of the blob slices.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Read reads and parses the index at indexURL from src. A missing index
// is an ErrNotFound *storage.Error; one over MaxJSONBytes ErrTooLarge;
// one that does not parse ErrCorrupt; storage failures are src's errors.
func Read(ctx context.Context, src storage.Source, indexURL string) (*Index, error) {
	data, err := storage.Fetch(ctx, src, storage.Object{URL: indexURL}, storage.FetchOptions{MaxSize: MaxJSONBytes})
	if err != nil {
		return nil, err
	}
	return Parse(indexURL, data)
}

// Load reads the index at indexURL and checks that it describes objs, the
// shards a dataset URL resolved to: every object must have an entry with
// its size (where the entry records one) and its ETag (where both record
// one), and at least one of the two must be checked. The Index returned
// has exactly one entry per object, in the order of objs (with the
// object's URL), so Entries[i].Samples is the count of objs[i]; entries
// of other shards (another split in the same folder, or shards since
// deleted) are left out.
//
// ok is false, with why saying so for the log, when there is no usable
// index: none there, too large, corrupt, or stale (a shard added, resized
// or rewritten since it was written). err is for the rest: storage
// unreachable, permission denied, a cancelled ctx.
func Load(ctx context.Context, src storage.Source, indexURL string, objs []storage.Object) (x *Index, ok bool, why string, err error) {
	full, err := Read(ctx, src, indexURL)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, false, "no dataset index at " + indexURL, nil
	case errors.Is(err, storage.ErrTooLarge), errors.Is(err, storage.ErrCorrupt), errors.Is(err, storage.ErrChanged):
		return nil, false, err.Error(), nil
	case err != nil:
		return nil, false, "", err
	}
	byURL := make(map[string]int, len(full.Entries))
	for i, e := range full.Entries {
		byURL[e.URL] = i
	}
	x = &Index{URL: full.URL, Name: full.Name, Blob: full.Blob, Entries: make([]Entry, len(objs))}
	for i, o := range objs {
		k, found := byURL[o.URL]
		if !found {
			return nil, false, fmt.Sprintf("dataset index %s is stale: it does not list %s", indexURL, o.URL), nil
		}
		e := full.Entries[k]
		switch {
		case e.Size >= 0 && e.Size != o.Size:
			return nil, false, fmt.Sprintf("dataset index %s is stale: %s has %d bytes, the index says %d", indexURL, o.URL, o.Size, e.Size), nil
		case e.ETag != "" && o.ETag != "" && e.ETag != o.ETag:
			return nil, false, fmt.Sprintf("dataset index %s is stale: %s has ETag %s, the index says %s", indexURL, o.URL, o.ETag, e.ETag), nil
		case e.Size < 0 && (e.ETag == "" || o.ETag == ""):
			return nil, false, fmt.Sprintf("dataset index %s records neither the size nor the ETag of %s, so it cannot be checked", indexURL, o.URL), nil
		}
		x.Entries[i] = e
	}
	return x, true, "", nil
}

// ReadShard reads the compact index of entry i of x from its slice of the
// blob, with one ranged read that carries the blob's recorded ETag, and
// checks its CRC-32C and that it has the entry's sample count. An entry
// without a compact index is ErrNotFound; a blob rewritten since x was
// written is ErrChanged; a bad slice is ErrCorrupt; all are *storage.Error
// values naming the shard. src reads the blob's URL.
func ReadShard(ctx context.Context, src storage.Source, x *Index, i int) (*wds.ShardIndex, error) {
	e, err := slice(x, i)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, e.IndexLength)
	if err := src.ReadAt(ctx, blobObject(x), buf, e.IndexOffset); err != nil {
		return nil, fmt.Errorf("reading the index of %s: %w", e.URL, err)
	}
	return parseSlice(x, e, buf)
}

// Joining the blob slices of several shards into one read (ReadShards).
const (
	// maxSliceGap is the most bytes of other shards' slices read between
	// two wanted ones rather than starting another read.
	maxSliceGap = 256 << 10
	// maxSliceRun caps one read of joined slices.
	maxSliceRun = 8 << 20
)

// ReadShards reads the compact indexes of entries is of x, as ReadShard
// does one, joining slices that lie close in the blob into one ranged
// read: the indexes of a shuffle window's shards cost a few GETs, not
// one each. out[j] and errs[j] are entry is[j]'s index or error; a read
// that fails fails the entries it covers, and no other.
func ReadShards(ctx context.Context, src storage.Source, x *Index, is []int) (out []*wds.ShardIndex, errs []error) {
	out, errs = make([]*wds.ShardIndex, len(is)), make([]error, len(is))
	order := make([]int, 0, len(is)) // positions in is of valid entries, by blob offset
	for j, i := range is {
		if _, errs[j] = slice(x, i); errs[j] == nil {
			order = append(order, j)
		}
	}
	offset := func(j int) int64 { return x.Entries[is[j]].IndexOffset }
	end := func(j int) int64 { e := x.Entries[is[j]]; return e.IndexOffset + e.IndexLength }
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(offset(a), offset(b)) })
	for len(order) > 0 {
		lo, hi, n := offset(order[0]), end(order[0]), 1
		for ; n < len(order); n++ {
			next := order[n]
			if offset(next)-hi > maxSliceGap || max(hi, end(next))-lo > maxSliceRun {
				break
			}
			hi = max(hi, end(next))
		}
		run := order[:n]
		order = order[n:]
		buf := make([]byte, hi-lo)
		if err := src.ReadAt(ctx, blobObject(x), buf, lo); err != nil {
			for _, j := range run {
				errs[j] = fmt.Errorf("reading the index of %s: %w", x.Entries[is[j]].URL, err)
			}
			continue
		}
		for _, j := range run {
			e := x.Entries[is[j]]
			out[j], errs[j] = parseSlice(x, e, buf[e.IndexOffset-lo:e.IndexOffset-lo+e.IndexLength])
		}
	}
	return out, errs
}

// slice checks that entry i of x has a compact index in the blob and
// returns the entry.
func slice(x *Index, i int) (Entry, error) {
	const op = "read shard index"
	if i < 0 || i >= len(x.Entries) {
		return Entry{}, &storage.Error{Op: op, Object: x.URL, Kind: storage.ErrNotFound, Err: fmt.Errorf("entry %d of %d", i, len(x.Entries))}
	}
	e := x.Entries[i]
	if e.IndexLength <= 0 || x.Blob.URL == "" {
		return Entry{}, &storage.Error{Op: op, Object: e.URL, Kind: storage.ErrNotFound, Err: fmt.Errorf("dataset index %s has no compact index of this shard", x.URL)}
	}
	if e.IndexLength > MaxShardIndexBytes || e.IndexOffset < 0 || (x.Blob.Size > 0 && e.IndexOffset > x.Blob.Size-e.IndexLength) {
		return Entry{}, &storage.Error{Op: op, Object: e.URL, Kind: storage.ErrTooLarge, Err: fmt.Errorf("blob slice of %d bytes at %d", e.IndexLength, e.IndexOffset)}
	}
	return e, nil
}

func blobObject(x *Index) storage.Object {
	return storage.Object{URL: x.Blob.URL, Size: x.Blob.Size, ETag: x.Blob.ETag}
}

// parseSlice checks entry e's slice of the blob (its CRC-32C and sample
// count) and decodes it.
func parseSlice(x *Index, e Entry, buf []byte) (*wds.ShardIndex, error) {
	const op = "read shard index"
	if got := crc32.Checksum(buf, castagnoli); got != e.IndexCRC {
		return nil, &storage.Error{Op: op, Object: e.URL, Kind: storage.ErrCorrupt,
			Err: fmt.Errorf("%s bytes [%d, %d+%d): crc32c %08x, the index says %08x", x.Blob.URL, e.IndexOffset, e.IndexOffset, e.IndexLength, got, e.IndexCRC)}
	}
	si, err := wds.UnmarshalShardIndex(buf)
	if err != nil {
		return nil, &storage.Error{Op: op, Object: e.URL, Kind: storage.ErrCorrupt, Err: fmt.Errorf("in %s: %w", x.Blob.URL, err)}
	}
	if si.Len() != e.Samples {
		return nil, &storage.Error{Op: op, Object: e.URL, Kind: storage.ErrCorrupt, Err: fmt.Errorf("its compact index has %d samples, the entry %d", si.Len(), e.Samples)}
	}
	return si, nil
}
