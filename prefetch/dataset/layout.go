package dataset

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// Layout is how a dataset's format lays its samples out in its objects,
// and so how the dataset is opened and its shards are read:
//
//   - WebDataset: a shard is an object, a tar (or gzipped tar) of samples
//     grouped by key; a shard's sample index (wds.ShardIndex) gives each
//     sample's key, fields and byte ranges, and counts the shard when it
//     is loaded.
//   - columnar (Parquet, Arrow IPC file or stream): a shard is one unit of
//     an object (a row group, a record batch), decoded whole; its samples
//     are rows, counted by the objects' footers at the open.
//
// The catalog chooses a dataset's layout once, from its format, when it
// opens the dataset or rebuilds it from a stored manifest; the fetch
// layer, the catalog and the server ask it (Dataset.Layout) instead of
// telling the formats apart. Where what they do genuinely differs (a
// columnar dataset's rows go on the wire as Arrow record batches, a
// WebDataset's samples as fields), Columnar is the one question that
// tells them apart. The implementations are this package's: a new format
// is a new Layout here.
type Layout interface {
	// Format is the format's name, as manifests and requests spell it.
	Format() shuffle.Format
	// SampleRanges reports whether a sample of shard o can be read alone,
	// as a byte range of o; if not (a gzipped tar, a columnar unit), o is
	// fetched whole.
	SampleRanges(o storage.Object) bool
	// SampleIndexes reports whether shards have sample indexes
	// (Dataset.ShardIndex), which describe a sample's fields and count
	// the shard as they load: a dataset whose counts are not all known
	// at the open is counted through them. Without them a shard is
	// decoded whole and its count is known at the open.
	SampleIndexes() bool
	// Columnar is a columnar dataset's schema and units, nil for a
	// dataset whose samples have fields: the dispatch point for callers
	// whose work differs by format, not only in degree.
	Columnar() *Columnar

	// open makes the dataset of url from its objects, of this format (x:
	// the index the URL named, or nil). key is its entry in the catalog's
	// opened datasets, which open may reuse.
	open(ctx context.Context, c *Catalog, key, url string, objs []storage.Object, x Index) (*Dataset, error)
	// load rebuilds a dataset from m, a manifest an earlier open stored,
	// with storage unreachable.
	load(c *Catalog, m *shuffle.Manifest) (*Dataset, error)
}

// knownFormats lists the formats Open accepts, for error messages.
const knownFormats = `"webdataset", "parquet", "arrow", "arrows"`

// layoutOf returns the layout of format f, and whether f names one. ""
// (a manifest stored before the columnar formats) and a name no layout
// has get WebDataset's.
func layoutOf(f shuffle.Format) (Layout, bool) {
	switch {
	case f == shuffle.FormatWebDataset || f == "":
		return webDataset{}, true
	case f.Columnar():
		return &columnarLayout{format: f}, true
	}
	return webDataset{}, false
}

// pickFormat settles a dataset's format and keeps the objects of that
// format. With no format given, the extensions decide: WebDataset when
// any object is a tar (as before columnar formats existed), else the one
// columnar format of the objects; objects of several columnar formats need
// a format. An object whose name says no format is kept: its format is the
// dataset's.
func pickFormat(url string, format shuffle.Format, objs []storage.Object) ([]storage.Object, shuffle.Format, error) {
	if format == "" {
		seen := map[string]bool{} // formats named by extensions, as strings to join
		for _, o := range objs {
			if f := FormatOf(o.URL); f != "" {
				seen[string(f)] = true
			}
		}
		switch fs := slices.Sorted(maps.Keys(seen)); {
		case seen[string(shuffle.FormatWebDataset)] || len(fs) == 0:
			format = shuffle.FormatWebDataset
		case len(fs) == 1:
			format = shuffle.Format(fs[0])
		default:
			return nil, "", &storage.Error{Op: "open", Object: url, Kind: storage.ErrBadURL,
				Err: fmt.Errorf("objects of several formats (%s): say which with format", strings.Join(fs, ", "))}
		}
	}
	kept := objs[:0:0]
	for _, o := range objs {
		if f := FormatOf(o.URL); f == "" || f == format || len(objs) == 1 {
			kept = append(kept, o)
		}
	}
	if len(kept) == 0 {
		return nil, "", &storage.Error{Op: "open", Object: url, Kind: storage.ErrNotFound, Err: fmt.Errorf("no %s objects there", format)}
	}
	return kept, format, nil
}
