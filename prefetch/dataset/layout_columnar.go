package dataset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// Columnar is what a columnar dataset adds to its manifest: the schema and,
// for every shard (unit), the index of its object. Immutable once made.
type Columnar struct {
	// Schema is the schema every object of the dataset has.
	Schema *arrow.Schema
	// SchemaBytes is Schema as an Arrow IPC stream with no batches.
	SchemaBytes []byte
	// Objects[i] is the index of shard i's object; Units[i] is the unit.
	Objects []*columnar.Index
	Units   []columnar.Unit
}

// columnarLayout is the Layout of the columnar formats: a shard is one
// unit of an object (a Parquet row group, an Arrow record batch), fetched
// as its byte range and decoded whole. An opened dataset's holds its
// schema and units (col); layoutOf's, which opens it, has none yet.
type columnarLayout struct {
	format shuffle.Format
	col    *Columnar
}

func (l *columnarLayout) Format() shuffle.Format { return l.format }

// SampleRanges: a unit is decoded whole, so fetched whole.
func (*columnarLayout) SampleRanges(storage.Object) bool { return false }

func (*columnarLayout) SampleIndexes() bool { return false }

func (l *columnarLayout) Columnar() *Columnar { return l.col }

// open indexes the objects (their footers): the units' row counts are the
// dataset's counts.
func (l *columnarLayout) open(ctx context.Context, c *Catalog, _, url string, objs []storage.Object, _ Index) (*Dataset, error) {
	ds, err := c.openColumnar(ctx, url, l.format, objs)
	if err != nil {
		return nil, err
	}
	ds.CountsFrom = CountsFooters
	return ds, nil
}

// load takes the objects' indexes stored by the open that stored m.
func (l *columnarLayout) load(c *Catalog, m *shuffle.Manifest) (*Dataset, error) {
	ds, err := c.loadColumnar(m)
	if err != nil {
		return nil, err
	}
	ds.CountsFrom = CountsFooters
	return ds, nil
}

// openColumnar indexes every object (footers only, stored on disk keyed by
// object and ETag) and makes one manifest shard per unit, in file order.
// Every object must have the first one's schema.
func (c *Catalog) openColumnar(ctx context.Context, url string, format shuffle.Format, objs []storage.Object) (*Dataset, error) {
	idx := make([]*columnar.Index, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.IndexParallel)
	for i, o := range objs {
		g.Go(func() (err error) {
			idx[i], err = c.indexColumnar(gctx, o, format)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m := &shuffle.Manifest{URL: url, Format: format}
	for i, o := range objs {
		for _, u := range idx[i].Units {
			m.Shards = append(m.Shards, manifestShard(unitObject(o, u), int(u.Rows), u.Part))
		}
	}
	ds, err := newColumnarDataset(m, objs, idx, false)
	if err != nil {
		return nil, err
	}
	if err := c.storeManifest(m); err != nil {
		c.log.Warn("cannot store manifest", "url", url, "err", err)
	}
	return ds, nil
}

// newColumnarDataset checks the objects' schemas agree and pairs every
// shard with its object's index.
func newColumnarDataset(m *shuffle.Manifest, objs []storage.Object, idx []*columnar.Index, stored bool) (*Dataset, error) {
	if len(objs) == 0 {
		return nil, &storage.Error{Op: "open", Object: m.URL, Kind: storage.ErrNotFound, Err: errors.New("no objects")}
	}
	col := &Columnar{}
	byURL := map[string]*columnar.Index{}
	for i, o := range objs {
		s, err := idx[i].ArrowSchema()
		if err != nil {
			return nil, &storage.Error{Op: "index", Object: o.URL, Kind: storage.ErrCorrupt, Err: err}
		}
		if i == 0 {
			col.Schema, col.SchemaBytes = s, idx[i].Schema
		} else if d := columnar.SameFields(col.Schema, s); d != "" {
			return nil, &storage.Error{Op: "index", Object: o.URL, Kind: storage.ErrCorrupt, Err: fmt.Errorf("schema differs from %s: %s", objs[0].URL, d)}
		}
		byURL[o.URL] = idx[i]
	}
	for _, sh := range m.Shards {
		ix := byURL[sh.Object]
		u := shardUnit(sh)
		if ix == nil || !slices.Contains(ix.Units, u) {
			return nil, &storage.Error{Op: "open", Object: sh.Object, Kind: storage.ErrCorrupt, Err: fmt.Errorf("manifest unit %d is not in the object's index", sh.Part)}
		}
		col.Objects = append(col.Objects, ix)
		col.Units = append(col.Units, u)
	}
	return newDataset(m, &columnarLayout{format: m.Format, col: col}, true, stored), nil
}

// storedColumnar is the on-disk form of one object's columnar index.
type storedColumnar struct {
	Object string          `json:"object"`
	ETag   string          `json:"etag"`
	Index  *columnar.Index `json:"index"`
}

func (c *Catalog) columnarPath(o storage.Object, format shuffle.Format) string {
	return c.indexPath(storage.Object{URL: o.URL, ETag: o.ETag + "\x00" + string(format)})
}

// indexColumnar returns o's index: from disk, or by reading its footer
// (an IPC stream: the whole object, once).
func (c *Catalog) indexColumnar(ctx context.Context, o storage.Object, format shuffle.Format) (*columnar.Index, error) {
	var sc storedColumnar
	path := c.columnarPath(o, format)
	if err := readJSON(path, &sc); err == nil && sc.Object == o.URL && sc.ETag == o.ETag && sc.Index != nil && sc.Index.Format == format {
		c.stored.loaded(path)
		return sc.Index, nil
	}
	src, err := c.sources.For(o.URL)
	if err != nil {
		return nil, err
	}
	ix, err := columnar.IndexObject(ctx, format, objectReader{src: src, o: o}, o.Size)
	if err != nil {
		var pe *storage.Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, &storage.Error{Op: "index", Object: o.URL, Kind: storage.ErrCorrupt, Err: err}
	}
	if err := writeJSON(path, storedColumnar{Object: o.URL, ETag: o.ETag, Index: ix}); err != nil {
		c.log.Warn("cannot store columnar index", "object", o.URL, "err", err)
	} else if fi, err := os.Stat(path); err == nil {
		c.storedIndex(path, fi.Size())
	}
	return ix, nil
}

// loadColumnar rebuilds a dataset from a stored manifest and the stored
// indexes of its objects.
func (c *Catalog) loadColumnar(m *shuffle.Manifest) (*Dataset, error) {
	var objs []storage.Object
	var idx []*columnar.Index
	for _, sh := range m.Shards {
		if len(objs) > 0 && objs[len(objs)-1].URL == sh.Object {
			continue
		}
		o := shardObject(sh)
		o.Offset, o.Length = 0, 0 // the whole object, whose unit sh is
		var sc storedColumnar
		if err := readJSON(c.columnarPath(o, m.Format), &sc); err != nil || sc.Index == nil {
			return nil, fmt.Errorf("no stored index for %s", o.URL)
		}
		objs, idx = append(objs, o), append(idx, sc.Index)
	}
	return newColumnarDataset(m, objs, idx, true)
}

// objectReader reads ranges of one object version through its Source.
type objectReader struct {
	src storage.Source
	o   storage.Object
}

func (r objectReader) ReadAt(ctx context.Context, p []byte, off int64) error {
	return r.src.ReadAt(ctx, r.o, p, off)
}
