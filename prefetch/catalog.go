package prefetch

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
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// Dataset is an opened dataset: its manifest and, for every shard, the
// index of its samples. A Dataset is immutable; share it freely.
type Dataset struct {
	Manifest *shuffle.Manifest
	// Index[i] lists the samples of shard i with their fields' offsets in
	// the shard's decompressed bytes.
	Index [][]wds.Sample
	// FromStored is true when storage could not be reached and the
	// manifest stored by an earlier open was used.
	FromStored bool
	// Columnar describes a columnar dataset's units and schema (nil for
	// WebDataset); its shards are units, and Index is nil.
	Columnar *Columnar
	keys     []CacheKey       // cache key of shard i, made once (a unit's is formatted)
	shardOf  map[CacheKey]int // shard index by cache key
}

// Key returns the cache key of shard i.
func (d *Dataset) Key(i int) CacheKey {
	return d.keys[i]
}

// ShardOf returns the index of the shard with key k, or -1.
func (d *Dataset) ShardOf(k CacheKey) int {
	if i, ok := d.shardOf[k]; ok {
		return i
	}
	return -1
}

// Object returns shard i as a Source object.
func (d *Dataset) Object(i int) Object {
	s := d.Manifest.Shards[i]
	return Object{URL: s.Object, Size: s.Size, ETag: s.ETag, Offset: s.Offset, Length: s.Length}
}

func newDataset(m *shuffle.Manifest, idx [][]wds.Sample, stored bool) *Dataset {
	d := &Dataset{Manifest: m, Index: idx, FromStored: stored,
		keys: make([]CacheKey, len(m.Shards)), shardOf: make(map[CacheKey]int, len(m.Shards))}
	for i := range m.Shards {
		d.keys[i] = d.Object(i).CacheKey()
		d.shardOf[d.keys[i]] = i
	}
	return d
}

// CatalogConfig configures a Catalog.
type CatalogConfig struct {
	// Dir holds stored manifests and shard indexes.
	Dir string
	// IndexParallel is how many shards are indexed at once.
	IndexParallel int
	// Fetch sets how whole shards are read for indexing.
	Fetch FetchOptions
	// ResolveTTL is how long an opened dataset is reused before its URL is
	// listed again: the ranks of a job open the same URL at once.
	ResolveTTL time.Duration
	// OutageRetry is how long, after storage was found unreachable, opens
	// of the same URL use the dataset opened before (or the stored
	// manifest) without trying storage again: each try waits out the
	// source's retries, which would otherwise delay every stream's start.
	OutageRetry time.Duration
	// MaxIndexes is how many shard indexes are kept decoded in memory.
	MaxIndexes int
}

// DefaultCatalogConfig returns the defaults; Dir must still be set.
func DefaultCatalogConfig() CatalogConfig {
	return CatalogConfig{
		IndexParallel: 8,                // indexing reads whole shards: as many as fetches in flight
		ResolveTTL:    30 * time.Second, // a job's ranks start within seconds of each other
		OutageRetry:   30 * time.Second, // one slow open per URL every 30 s while storage is down
		MaxIndexes:    1 << 16,          // 64k shards, a few hundred MiB of keys and offsets at most
	}
}

// Catalog opens datasets: it resolves a URL into objects, indexes every
// shard once (the index is stored on disk keyed by object and ETag, so a
// reopen is instant and a changed object is re-indexed), and keeps the
// manifest of each URL so a dataset stays readable when storage is down.
// Shards read for indexing are put into the cache. Safe for concurrent use.
type Catalog struct {
	cfg     CatalogConfig
	sources *Sources
	shards  *Shards
	log     *slog.Logger
	group   singleflight.Group // one open per URL at a time

	opened  *lru.Cache[string, opened]         // recently opened datasets by URL; safe for concurrent use
	indexes *lru.Cache[CacheKey, []wds.Sample] // decoded shard indexes; safe for concurrent use
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

// NewCatalog returns a Catalog storing its files under cfg.Dir.
func NewCatalog(cfg CatalogConfig, sources *Sources, shards *Shards, log *slog.Logger) (*Catalog, error) {
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
	if cfg.MaxIndexes <= 0 {
		cfg.MaxIndexes = d.MaxIndexes
	}
	for _, d := range []string{"manifests", "index"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, &Error{Op: "catalog", Object: cfg.Dir, Kind: ErrUnavailable, Err: err}
		}
	}
	o, err := lru.New[string, opened](256)
	if err != nil {
		return nil, err
	}
	idx, err := lru.New[CacheKey, []wds.Sample](cfg.MaxIndexes)
	if err != nil {
		return nil, err
	}
	return &Catalog{cfg: cfg, sources: sources, shards: shards, log: log, opened: o, indexes: idx}, nil
}

// Open resolves and indexes the dataset at url. Errors are *Error values.
func (c *Catalog) Open(ctx context.Context, url string, format shuffle.Format) (*Dataset, error) {
	if format != "" && format != shuffle.FormatWebDataset && !format.Columnar() {
		return nil, &Error{Op: "open", Object: url, Kind: ErrBadURL, Err: fmt.Errorf("unknown format %q (want %s, or empty to go by the objects' extensions)", format, knownFormats)}
	}
	key := string(format) + " " + url
	if o, ok := c.opened.Get(key); ok && c.fresh(o) {
		return o.ds, nil
	}
	// The open goes on if this caller gives up: others may wait on it, and
	// the indexes it stores serve the next open.
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

// open resolves and indexes the dataset at url; key is its entry in
// c.opened.
func (c *Catalog) open(ctx context.Context, key, url string, format shuffle.Format) (*Dataset, error) {
	objs, err := Resolve(ctx, c.sources, url)
	if errors.Is(err, ErrUnavailable) {
		retryAfter := time.Now().Add(c.cfg.OutageRetry)
		if o, ok := c.opened.Get(key); ok {
			c.log.Warn("storage unreachable: using the dataset opened before", "url", url, "opened", o.at, "retry_after", c.cfg.OutageRetry, "err", err)
			ds := *o.ds // immutable: the copy shares its manifest, indexes and keys
			ds.FromStored = true
			c.opened.Add(key, opened{ds: &ds, at: o.at, retryAfter: retryAfter})
			return &ds, nil
		}
		m, serr := c.loadManifest(url)
		if serr != nil || (format != "" && m.Format != format) {
			return nil, err
		}
		c.log.Warn("storage unreachable: using the stored manifest", "url", url, "shards", len(m.Shards), "err", err)
		if m.Format.Columnar() {
			ds, cerr := c.loadColumnar(m)
			if cerr != nil {
				return nil, err
			}
			c.opened.Add(key, opened{ds: ds, retryAfter: retryAfter})
			return ds, nil
		}
		idx, ierr := c.loadIndexes(m)
		if ierr != nil {
			return nil, err
		}
		ds := newDataset(m, idx, true)
		c.opened.Add(key, opened{ds: ds, retryAfter: retryAfter})
		return ds, nil
	}
	if err != nil {
		return nil, err
	}
	if objs, format, err = pickFormat(url, format, objs); err != nil {
		return nil, err
	}
	if format.Columnar() {
		ds, err := c.openColumnar(ctx, url, format, objs)
		if err != nil {
			return nil, err
		}
		c.opened.Add(key, opened{ds: ds, at: time.Now()})
		return ds, nil
	}
	m := &shuffle.Manifest{URL: url, Format: format, Shards: make([]shuffle.Shard, len(objs))}
	idx := make([][]wds.Sample, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.IndexParallel)
	for i, o := range objs {
		g.Go(func() error {
			samples, err := c.index(gctx, o)
			if err != nil {
				return err
			}
			idx[i] = samples
			m.Shards[i] = shuffle.Shard{Object: o.URL, Size: o.Size, ETag: o.ETag, Samples: len(samples)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := c.storeManifest(m); err != nil {
		c.log.Warn("cannot store manifest", "url", url, "err", err)
	}
	ds := newDataset(m, idx, false)
	c.opened.Add(key, opened{ds: ds, at: time.Now()})
	return ds, nil
}

// storedIndex is the on-disk form of one shard's index.
type storedIndex struct {
	Object  string       `json:"object"`
	ETag    string       `json:"etag"`
	Samples []wds.Sample `json:"samples"`
}

func (c *Catalog) indexPath(o Object) string {
	return filepath.Join(c.cfg.Dir, "index", digest(o.URL+"\x00"+o.ETag)+".json")
}

func (c *Catalog) manifestPath(url string) string {
	return filepath.Join(c.cfg.Dir, "manifests", digest(url)+".json")
}

// index returns the sample index of o, from disk or by reading the shard.
func (c *Catalog) index(ctx context.Context, o Object) ([]wds.Sample, error) {
	key := CacheKey{Object: o.URL, ETag: o.ETag}
	if samples, ok := c.indexes.Get(key); ok {
		return samples, nil
	}
	var si storedIndex
	if err := readJSON(c.indexPath(o), &si); err == nil && si.Object == o.URL && si.ETag == o.ETag {
		c.indexes.Add(key, si.Samples)
		return si.Samples, nil
	}
	r, err := c.shards.Get(ctx, o)
	if err != nil {
		return nil, err
	}
	samples, err := wds.IndexBytes(r.Bytes()) // keeps no slice of its input
	r.Release()
	if err != nil {
		return nil, &Error{Op: "index", Object: o.URL, Kind: ErrCorrupt, Err: err}
	}
	if err := writeJSON(c.indexPath(o), storedIndex{Object: o.URL, ETag: o.ETag, Samples: samples}); err != nil {
		c.log.Warn("cannot store shard index", "object", o.URL, "err", err)
	}
	c.indexes.Add(key, samples)
	return samples, nil
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

func (c *Catalog) loadIndexes(m *shuffle.Manifest) ([][]wds.Sample, error) {
	idx := make([][]wds.Sample, len(m.Shards))
	for i, s := range m.Shards {
		var si storedIndex
		o := Object{URL: s.Object, Size: s.Size, ETag: s.ETag}
		if err := readJSON(c.indexPath(o), &si); err != nil {
			return nil, err
		}
		idx[i] = si.Samples
	}
	return idx, nil
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
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
