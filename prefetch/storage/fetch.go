package storage

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// FetchOptions sets how Fetch reads an object. The zero value takes the
// defaults.
type FetchOptions struct {
	// PartSize is the size of one ranged read (default 8 MiB). An object
	// larger than this is read as parallel ranges.
	PartSize int64
	// Parallel is how many ranges are read at once (default 4).
	Parallel int
	// MaxSize refuses objects larger than this with ErrTooLarge, before
	// allocating (default 0: no limit).
	MaxSize int64
}

const (
	defaultPartSize = 8 << 20
	defaultParallel = 4
)

// Fetch reads the whole of obj from src into one new buffer. An object
// larger than opt.PartSize is read as ranges of that size, opt.Parallel at
// a time; the first error cancels the others and is returned as it is (an
// *Error from src). Every range carries obj.ETag, so a rewrite while
// reading is ErrChanged, never a mix of versions. An obj without an ETag is
// Stat'ed first to pin its size and version.
//
// Fetch is safe to call concurrently if src is (every Source is).
func Fetch(ctx context.Context, src Source, obj Object, opt FetchOptions) ([]byte, error) {
	if opt.PartSize <= 0 {
		opt.PartSize = defaultPartSize
	}
	if opt.Parallel <= 0 {
		opt.Parallel = defaultParallel
	}
	if obj.ETag == "" {
		o, err := src.Stat(ctx, obj.URL)
		if err != nil {
			return nil, err
		}
		obj = o
	}
	if obj.Size < 0 {
		return nil, &Error{Op: "fetch", Object: obj.URL, Kind: ErrCorrupt, Err: fmt.Errorf("negative size %d", obj.Size)}
	}
	if opt.MaxSize > 0 && obj.Size > opt.MaxSize {
		return nil, &Error{Op: "fetch", Object: obj.URL, Kind: ErrTooLarge, Err: fmt.Errorf("%d bytes, limit %d", obj.Size, opt.MaxSize)}
	}
	buf := make([]byte, obj.Size)
	if obj.Size == 0 {
		return buf, nil
	}
	if obj.Size <= opt.PartSize {
		if err := src.ReadAt(ctx, obj, buf, 0); err != nil {
			return nil, err
		}
		return buf, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Parallel)
	for off := int64(0); off < obj.Size; off += opt.PartSize {
		end := min(off+opt.PartSize, obj.Size)
		if gctx.Err() != nil {
			break // a part failed: start no more
		}
		g.Go(func() error { return src.ReadAt(gctx, obj, buf[off:end], off) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "fetch", Object: obj.URL, Kind: ErrUnavailable, Err: err}
	}
	return buf, nil
}
