package prefetch

import (
	"errors"
	"fmt"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// DefaultMaxShardBytes is the per-shard limit (ShardsConfig.MaxShardBytes)
// for a memory tier of memBytes: the tier's size, at least 256 MiB and at
// most 4 GiB.
//
// A shard larger than the memory tier cannot stay in it, so every read of
// it fetches and inflates it again: refusing it with a clear error is
// kinder than serving it slowly. The floor keeps ordinary shards (WebDataset
// suggests 100 MB to 1 GB) readable behind a tiny tier, as tests and small
// machines use; the cap keeps what one gzip bomb can claim, times the
// fetches in flight, well inside a large node's memory. A gzip bomb costs
// no memory at all (wds.DecompressLimit only counts what it would inflate
// to), only the CPU to inflate the limit's worth of bytes.
func DefaultMaxShardBytes(memBytes int64) int64 {
	return max(256<<20, min(memBytes, 4<<30))
}

// decompressShard returns the tar bytes of o, fetched as raw, within limit.
func decompressShard(o storage.Object, raw []byte, limit int64) ([]byte, error) {
	data, err := wds.DecompressLimit(raw, limit)
	if err != nil {
		kind := storage.ErrCorrupt
		if errors.Is(err, wds.ErrTooLarge) {
			kind = storage.ErrTooLarge
		}
		return nil, limitHint(&storage.Error{Op: "read", Object: o.URL, Kind: kind, Err: err})
	}
	return data, nil
}

// limitHint says how to raise the per-shard limit in an ErrTooLarge error
// of a fetch; other errors pass as they are.
func limitHint(err error) error {
	var e *storage.Error
	if !errors.As(err, &e) || !errors.Is(err, storage.ErrTooLarge) {
		return err
	}
	return &storage.Error{Op: e.Op, Object: e.Object, Kind: storage.ErrTooLarge,
		Err: fmt.Errorf("%w (raise the per-shard limit with stokerd --max-shard-size, or ShardsConfig.MaxShardBytes)", e.Err)}
}
