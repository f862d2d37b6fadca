package dataset

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds on the catalog's stored manifests, which are kept outside the
// cache's budget so a dataset stays readable while storage is down: one
// per dataset URL ever opened, they would otherwise grow for ever on a
// node that opens many URLs (a brace list per job, a prefix per run).
// Past either bound the manifests stored longest ago go first.
const (
	maxStoredManifests     = 1024      // dataset URLs remembered
	maxStoredManifestBytes = 256 << 20 // 256 MiB: a few manifests of a million shards
)

// storeBounded writes v to path (see writeJSON), then removes the oldest
// other manifests of its folder past the bounds. A failure to remove is
// logged, not returned: the manifest is stored.
func (c *Catalog) storeBounded(path string, v any) error {
	if err := writeJSON(path, v); err != nil {
		return err
	}
	removed, _, err := pruneStored(filepath.Dir(path), path, maxStoredManifests, maxStoredManifestBytes, ".json")
	if err != nil {
		c.log.Warn("cannot prune stored manifests", "dir", filepath.Dir(path), "err", err)
	}
	if removed > 0 {
		c.log.Info("removed the oldest stored manifests", "dir", filepath.Dir(path), "removed", removed,
			"max_manifests", maxStoredManifests, "max_bytes", maxStoredManifestBytes)
	}
	return nil
}

// pruneStored removes the files of dir with one of the suffixes stored
// longest ago (by modification time; a manifest is rewritten at every open
// from storage, a stored index touched when it is loaded) until at most
// maxCount remain holding at most maxBytes. keep, the file just stored, is
// never removed. It returns how many it removed and the bytes left.
func pruneStored(dir, keep string, maxCount int, maxBytes int64, suffixes ...string) (int, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	type stored struct {
		path string
		size int64
		mod  time.Time
	}
	var files []stored
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !slices.ContainsFunc(suffixes, func(x string) bool { return strings.HasSuffix(e.Name(), x) }) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, stored{filepath.Join(dir, e.Name()), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	slices.SortFunc(files, func(a, b stored) int { return a.mod.Compare(b.mod) })
	removed := 0
	for _, f := range files {
		if len(files)-removed <= maxCount && total <= maxBytes {
			break
		}
		if f.path == keep {
			continue
		}
		if err := os.Remove(f.path); err != nil && !os.IsNotExist(err) {
			return removed, total, err
		}
		removed++
		total -= f.size
	}
	return removed, total, nil
}

// defaultIndexDiskBytes bounds the catalog's stored shard and columnar
// indexes (index/), which, like the manifests, live outside the cache's
// budget: one per object ever indexed, they would otherwise grow with
// every dataset a node reads. 4 GiB holds the indexes of a few hundred
// million samples; an index pruned is loaded again from beside the shards
// or by reading its shard.
const defaultIndexDiskBytes = 4 << 30

// storedIndexes keeps the bytes of the index folder under a bound: it
// counts what is written (the folder is read once, at the first write),
// and past the bound removes the indexes stored or loaded longest ago,
// down to nine tenths of it, so a folder of millions of files is read
// again only after a tenth of the bound was written. Safe for concurrent
// use.
type storedIndexes struct {
	dir   string
	limit int64

	mu    sync.Mutex // guards total
	total int64      // bytes of the folder's indexes; -1: not counted yet
}

func newStoredIndexes(dir string, limit int64) *storedIndexes {
	return &storedIndexes{dir: dir, limit: limit, total: -1}
}

// wrote counts n bytes written to path, and prunes the folder when it is
// over the bound. It returns how many indexes it removed.
func (s *storedIndexes) wrote(path string, n int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= 0 {
		s.total += n
		if s.total <= s.limit {
			return 0, nil
		}
	}
	target := s.limit
	if s.total >= 0 { // over the bound: leave room for a tenth of it
		target = s.limit / 10 * 9
	}
	removed, left, err := pruneStored(s.dir, path, math.MaxInt, target, ".idx", ".json")
	if err != nil {
		s.total = -1 // count again at the next write
		return removed, err
	}
	s.total = left
	return removed, nil
}

// loaded marks a stored index as used now, so the bound removes it after
// the indexes not used since.
func (s *storedIndexes) loaded(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now) // best effort: a failure only makes it older
}
