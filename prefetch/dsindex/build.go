package dsindex

import (
	"context"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// Shard is one shard to write into an index.
type Shard struct {
	// Object is the shard as listed (URL, Size, ETag).
	Object storage.Object
	// Samples is its sample count.
	Samples int
	// Index is its compact index; nil records the count only.
	Index *wds.ShardIndex
}

// Build makes the index at indexURL of shards, sorted by URL, and the blob
// of their compact indexes that Save stores beside it. A shard whose Index
// has another sample count than Samples, or two shards with one URL, are
// errors.
func Build(indexURL, name string, shards []Shard) (*Index, []byte, error) {
	dir, ok := folder(indexURL)
	if !ok || !strings.HasSuffix(indexURL, ".json") {
		return nil, nil, &storage.Error{Op: "write index", Object: indexURL, Kind: storage.ErrBadURL, Err: fmt.Errorf("want scheme://host/path/%s", IndexName)}
	}
	if len(shards) == 0 || len(shards) > MaxEntries {
		return nil, nil, &storage.Error{Op: "write index", Object: indexURL, Kind: storage.ErrBadURL, Err: fmt.Errorf("%d shards: want 1 to %d", len(shards), MaxEntries)}
	}
	shards = slices.Clone(shards)
	slices.SortFunc(shards, func(a, b Shard) int { return strings.Compare(a.Object.URL, b.Object.URL) })
	x := &Index{URL: indexURL, Name: name, Entries: make([]Entry, len(shards)), Blob: Blob{URL: dir + BlobName}}
	var blob []byte
	for i, s := range shards {
		if i > 0 && s.Object.URL == shards[i-1].Object.URL {
			return nil, nil, &storage.Error{Op: "write index", Object: s.Object.URL, Kind: storage.ErrBadURL, Err: fmt.Errorf("listed twice in %s", indexURL)}
		}
		if s.Samples < 0 || s.Samples > MaxSamples {
			return nil, nil, &storage.Error{Op: "write index", Object: s.Object.URL, Kind: storage.ErrTooLarge, Err: fmt.Errorf("%d samples", s.Samples)}
		}
		e := Entry{URL: s.Object.URL, Samples: s.Samples, Size: s.Object.Size, ETag: s.Object.ETag}
		if s.Index != nil {
			if s.Index.Len() != s.Samples {
				return nil, nil, &storage.Error{Op: "write index", Object: s.Object.URL, Kind: storage.ErrCorrupt, Err: fmt.Errorf("its index has %d samples, not %d", s.Index.Len(), s.Samples)}
			}
			b, err := s.Index.MarshalBinary()
			if err != nil {
				return nil, nil, &storage.Error{Op: "write index", Object: s.Object.URL, Kind: storage.ErrCorrupt, Err: err}
			}
			if len(b) > MaxShardIndexBytes {
				return nil, nil, &storage.Error{Op: "write index", Object: s.Object.URL, Kind: storage.ErrTooLarge, Err: fmt.Errorf("compact index of %d bytes, over %d", len(b), MaxShardIndexBytes)}
			}
			e.IndexOffset, e.IndexLength, e.IndexCRC = int64(len(blob)), int64(len(b)), crc32.Checksum(b, castagnoli)
			blob = append(blob, b...)
		}
		x.Entries[i] = e
	}
	x.Blob.Size = int64(len(blob))
	return x, blob, nil
}

// Save stores blob, then x's JSON (recording the blob's ETag, read back
// with src), through w. x.URL and x.Blob.URL must be w's. Readers of an
// older JSON then find the blob changed (their reads carry its old ETag)
// rather than reading wrong slices.
func Save(ctx context.Context, w storage.Writer, src storage.Source, x *Index, blob []byte) error {
	if err := w.Put(ctx, x.Blob.URL, blob); err != nil {
		return err
	}
	o, err := src.Stat(ctx, x.Blob.URL)
	if err != nil {
		return err
	}
	if o.Size != int64(len(blob)) {
		return &storage.Error{Op: "write index", Object: x.Blob.URL, Kind: storage.ErrChanged, Err: fmt.Errorf("%d bytes written, %d stored: another writer?", len(blob), o.Size)}
	}
	x.Blob.Size, x.Blob.ETag = o.Size, o.ETag
	data, err := x.Marshal()
	if err != nil {
		return err
	}
	return w.Put(ctx, x.URL, data)
}
