package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// CatalogConfig configures a Catalog.
type CatalogConfig struct {
	// Dir holds stored manifests and shard indexes.
	Dir string
	// IndexParallel is how many shards are indexed at once.
	IndexParallel int
	// Fetch sets how whole shards are read for indexing.
	Fetch storage.FetchOptions
	// ResolveTTL is how long an opened dataset is reused before its URL is
	// listed again: the ranks of a job open the same URL at once.
	ResolveTTL time.Duration
	// OutageRetry is how long, after storage was found unreachable, opens
	// of the same URL use the dataset opened before (or the stored
	// manifest) without trying storage again: each try waits out the
	// source's retries, which would otherwise delay every stream's start.
	OutageRetry time.Duration
	// IndexBytes bounds the memory of the shard indexes kept decoded.
	IndexBytes int64
	// IndexDiskBytes bounds the shard and columnar indexes stored on disk
	// (default 4 GiB): past it the indexes used longest ago are removed.
	IndexDiskBytes int64
	// Indexes finds indexes beside datasets' shards; nil counts every
	// dataset from its shards.
	Indexes IndexFinder
}

// DefaultCatalogConfig returns the defaults; Dir must still be set.
func DefaultCatalogConfig() CatalogConfig {
	return CatalogConfig{
		IndexParallel:  8,                // indexing reads whole shards: as many as fetches in flight
		ResolveTTL:     30 * time.Second, // a job's ranks start within seconds of each other
		OutageRetry:    30 * time.Second, // one slow open per URL every 30 s while storage is down
		IndexBytes:     256 << 20,        // millions of samples' keys and offsets
		IndexDiskBytes: defaultIndexDiskBytes,
	}
}

// Catalog opens datasets: it resolves a URL into objects and finds their
// sample counts without reading the shards when it can (a manifest stored
// by an earlier open, or an index beside the shards written by stoker
// index); otherwise the shards are counted as streams reach them (see
// Dataset.CountShards). A shard's sample index is loaded when the shard is
// read and stored on disk keyed by object and ETag. The manifest of each
// URL is kept so a dataset stays readable when storage is down. Safe for
// concurrent use.
type Catalog struct {
	cfg     CatalogConfig
	sources *storage.Sources
	shards  ShardReader
	log     *slog.Logger
	group   singleflight.Group            // one open per URL at a time
	loads   singleflight.Group            // one load per shard index
	batchMu sync.Mutex                    // guards batches
	batches map[storage.Key]chan struct{} // shard indexes being read together, closed when read

	opened  *lru.Cache[string, opened] // recently opened datasets by URL; safe for concurrent use
	indexes *indexCache                // decoded shard indexes, bounded by bytes
	stored  *storedIndexes             // the indexes stored on disk, bounded by bytes
	storing *lru.Cache[string, bool]   // manifests stored since counting ended, by dataset ID
}

// opened is a dataset and when its URL was resolved; with storage down,
// until when it is used without trying storage again.
type opened struct {
	ds         *Dataset
	at         time.Time
	retryAfter time.Time
}

// fresh reports whether o may be used without resolving its URL again.
func (c *Catalog) fresh(o opened) bool {
	return time.Since(o.at) < c.cfg.ResolveTTL || time.Now().Before(o.retryAfter)
}

// ShardReader reads a whole shard through the caches, for the Catalog to
// index a shard that has no index yet: prefetch.Shards is the one Stoker
// uses. Get is called concurrently.
type ShardReader interface {
	// Get returns o's decompressed bytes, read-only and valid until the
	// Ref is released, which the caller must do.
	Get(ctx context.Context, o storage.Object) (*cache.Ref, error)
}

// NewCatalog returns a Catalog storing its files under cfg.Dir, reading
// shards to index through shards.
func NewCatalog(cfg CatalogConfig, sources *storage.Sources, shards ShardReader, log *slog.Logger) (*Catalog, error) {
	d := DefaultCatalogConfig()
	if cfg.IndexParallel <= 0 {
		cfg.IndexParallel = d.IndexParallel
	}
	if cfg.ResolveTTL == 0 {
		cfg.ResolveTTL = d.ResolveTTL
	}
	if cfg.OutageRetry == 0 {
		cfg.OutageRetry = d.OutageRetry
	}
	if cfg.IndexBytes <= 0 {
		cfg.IndexBytes = d.IndexBytes
	}
	if cfg.IndexDiskBytes <= 0 {
		cfg.IndexDiskBytes = d.IndexDiskBytes
	}
	for _, d := range []string{"manifests", "index"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, &storage.Error{Op: "catalog", Object: cfg.Dir, Kind: storage.ErrUnavailable, Err: err}
		}
	}
	o, err := lru.New[string, opened](256)
	if err != nil {
		return nil, err
	}
	st, err := lru.New[string, bool](256)
	if err != nil {
		return nil, err
	}
	return &Catalog{cfg: cfg, sources: sources, shards: shards, log: log, opened: o, storing: st,
		indexes: newIndexCache(cfg.IndexBytes), batches: map[storage.Key]chan struct{}{}, stored: newStoredIndexes(filepath.Join(cfg.Dir, "index"), cfg.IndexDiskBytes)}, nil
}

// Open resolves the dataset at url and finds its sample counts where they
// are stored. Errors are *Error values.
func (c *Catalog) Open(ctx context.Context, url string, format shuffle.Format) (*Dataset, error) {
	if _, ok := layoutOf(format); !ok {
		return nil, &storage.Error{Op: "open", Object: url, Kind: storage.ErrBadURL, Err: fmt.Errorf("unknown format %q (want %s, or empty to go by the objects' extensions)", format, knownFormats)}
	}
	key := string(format) + " " + url
	if o, ok := c.opened.Get(key); ok && c.fresh(o) {
		return o.ds, nil
	}
	// The open goes on if this caller gives up: others may wait on it.
	ch := c.group.DoChan(key, func() (any, error) { return c.open(context.WithoutCancel(ctx), key, url, format) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Dataset), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// open resolves the dataset at url; key is its entry in c.opened.
func (c *Catalog) open(ctx context.Context, key, url string, format shuffle.Format) (*Dataset, error) {
	objs, x, err := c.resolve(ctx, url)
	if errors.Is(err, storage.ErrUnavailable) {
		return c.openStored(key, url, format, err)
	}
	if err != nil {
		return nil, err
	}
	if objs, format, err = pickFormat(url, format, objs); err != nil {
		return nil, err
	}
	l, _ := layoutOf(format)
	ds, err := l.open(ctx, c, key, url, objs, x)
	if err != nil {
		return nil, err
	}
	c.opened.Add(key, opened{ds: ds, at: time.Now()})
	return ds, nil
}

// resolve lists the dataset's objects; a URL naming a wids index (.json)
// lists the index's shards, and returns the index too.
func (c *Catalog) resolve(ctx context.Context, url string) ([]storage.Object, Index, error) {
	if c.cfg.Indexes == nil || !c.cfg.Indexes.IsIndexURL(url) {
		objs, err := Resolve(ctx, c.sources, url)
		return objs, nil, err
	}
	x, objs, err := c.cfg.Indexes.Open(ctx, url)
	return objs, x, err
}

// openStored opens url from what an earlier open left, storage being
// unreachable (err): the dataset opened before, else the stored manifest.
func (c *Catalog) openStored(key, url string, format shuffle.Format, err error) (*Dataset, error) {
	retryAfter := time.Now().Add(c.cfg.OutageRetry)
	if o, ok := c.opened.Get(key); ok {
		c.log.Warn("storage unreachable: using the dataset opened before", "url", url, "opened", o.at, "retry_after", c.cfg.OutageRetry, "err", err)
		o.ds.stored.Store(true)
		c.opened.Add(key, opened{ds: o.ds, at: o.at, retryAfter: retryAfter})
		return o.ds, nil
	}
	m, serr := c.loadManifest(url)
	if serr != nil || (format != "" && m.Format != format) {
		return nil, err
	}
	c.log.Warn("storage unreachable: using the stored manifest", "url", url, "shards", len(m.Shards), "err", err)
	l, _ := layoutOf(m.Format)
	ds, serr := l.load(c, m)
	if serr != nil {
		return nil, err
	}
	c.opened.Add(key, opened{ds: ds, retryAfter: retryAfter})
	return ds, nil
}

// countsFromManifest takes the counts of the manifest stored by an earlier
// open of the same URL when it lists the same objects and versions, and
// reports whether that made every count known (a manifest stored while
// the dataset was being counted has -1 for the shards not counted then).
func (c *Catalog) countsFromManifest(ds *Dataset) bool {
	m, err := c.loadManifest(ds.Manifest.URL)
	if err != nil || len(m.Shards) != len(ds.Manifest.Shards) || m.Format != ds.Manifest.Format {
		return false
	}
	for i, s := range m.Shards {
		o := ds.Manifest.Shards[i]
		if s.Object != o.Object || s.ETag != o.ETag || s.Size != o.Size {
			return false
		}
	}
	for i, s := range m.Shards {
		if s.Samples >= 0 {
			ds.setCount(i, s.Samples)
		}
	}
	return ds.Counted()
}

// countsFromIndex takes the counts of the index beside the shards (or the
// one the URL named, x) when it lists exactly these objects.
func (c *Catalog) countsFromIndex(ctx context.Context, ds *Dataset, objs []storage.Object, x Index) bool {
	if x == nil {
		if c.cfg.Indexes == nil {
			return false
		}
		var why string
		var err error
		x, why, err = c.cfg.Indexes.Find(ctx, ds.Manifest.URL, objs)
		if err != nil {
			c.log.Warn("cannot read the index beside the shards", "url", ds.Manifest.URL, "err", err)
			return false
		}
		if x == nil {
			c.log.Debug("no usable index beside the shards", "url", ds.Manifest.URL, "why", why)
			return false
		}
	}
	counts := x.Counts()
	if len(counts) != len(objs) {
		return false
	}
	ds.dsIndex = x
	for i, n := range counts {
		ds.setCount(i, n)
	}
	return true
}

// counted is called once when lazy counting has made every count of ds
// known: the manifest is stored with them, so the next open counts nothing.
func (c *Catalog) counted(ds *Dataset) {
	if _, seen := c.storing.Get(ds.ID); seen {
		return
	}
	c.storing.Add(ds.ID, true)
	if err := c.storeManifest(ds.withCounts()); err != nil {
		c.log.Warn("cannot store manifest", "url", ds.Manifest.URL, "err", err)
		return
	}
	n, _ := ds.NumSamples()
	c.log.Info("dataset counted: the next open needs no counting", "url", ds.Manifest.URL, "shards", len(ds.Manifest.Shards), "samples", n)
}

// Counting lists the opened datasets being counted now.
func (c *Catalog) Counting() []*Dataset {
	var out []*Dataset
	for _, o := range c.opened.Values() {
		if o.ds.Layout.SampleIndexes() && !o.ds.Counted() && o.ds.ShardsCounted() > 0 {
			out = append(out, o.ds)
		}
	}
	return out
}

func (c *Catalog) manifestPath(url string) string {
	return filepath.Join(c.cfg.Dir, "manifests", digest(url)+".json")
}

func (c *Catalog) storeManifest(m *shuffle.Manifest) error {
	return c.storeBounded(c.manifestPath(m.URL), m)
}

func (c *Catalog) loadManifest(url string) (*shuffle.Manifest, error) {
	var m shuffle.Manifest
	if err := readJSON(c.manifestPath(url), &m); err != nil {
		return nil, err
	}
	if m.URL != url {
		return nil, fmt.Errorf("stored manifest is for %s", m.URL)
	}
	return &m, nil
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON writes v to path atomically (temporary file, then rename).
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}
