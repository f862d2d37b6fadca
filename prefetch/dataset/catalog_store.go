package dataset

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	removed, err := pruneStored(filepath.Dir(path), path, maxStoredManifests, maxStoredManifestBytes)
	if err != nil {
		c.log.Warn("cannot prune stored manifests", "dir", filepath.Dir(path), "err", err)
	}
	if removed > 0 {
		c.log.Info("removed the oldest stored manifests", "dir", filepath.Dir(path), "removed", removed,
			"max_manifests", maxStoredManifests, "max_bytes", maxStoredManifestBytes)
	}
	return nil
}

// pruneStored removes the .json files of dir stored longest ago (by
// modification time; a manifest is rewritten at every open from storage)
// until at most maxCount remain holding at most maxBytes. keep, the file
// just stored, is never removed. It returns how many it removed.
func pruneStored(dir, keep string, maxCount int, maxBytes int64) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	type stored struct {
		path string
		size int64
		mod  time.Time
	}
	var files []stored
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
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
			return removed, err
		}
		removed++
		total -= f.size
	}
	return removed, nil
}
