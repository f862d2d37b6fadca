package server

import (
	"container/list"
	"context"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sync/singleflight"

	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// decodedCacheBytes bounds the decoded units shared by all streams. The
// ranks of a job read the same shuffle window at the same time, each
// needing every unit of it: sharing the decoded units decodes each once
// per node, not once per rank.
const decodedCacheBytes = 512 << 20

// decodedKey names a decoded unit: the unit's cache key and the columns.
type decodedKey struct {
	unit    storage.Key
	columns string
}

func (k decodedKey) String() string { return k.unit.Object + "\x00" + k.unit.ETag + "\x00" + k.columns }

type decodedEntry struct {
	key   decodedKey
	rec   arrow.RecordBatch
	bytes int64
}

// decodedCache keeps recently decoded units (least recently used out
// first) and decodes each at most once at a time. Its records are shared
// and read-only; they live in Go's heap, so dropping one is forgetting it.
// Safe for concurrent use.
type decodedCache struct {
	limit int64
	group singleflight.Group // one decode per key at a time

	mu      sync.Mutex // guards entries, order, bytes
	entries map[decodedKey]*list.Element
	order   *list.List // of *decodedEntry, most recent first
	bytes   int64
}

func newDecodedCache(limit int64) *decodedCache {
	return &decodedCache{limit: limit, entries: map[decodedKey]*list.Element{}, order: list.New()}
}

// get returns the decoded unit for key, calling decode on a miss.
func (c *decodedCache) get(ctx context.Context, key decodedKey, decode func() (arrow.RecordBatch, error)) (arrow.RecordBatch, error) {
	if rec, ok := c.lookup(key); ok {
		return rec, nil
	}
	ch := c.group.DoChan(key.String(), func() (any, error) {
		if rec, ok := c.lookup(key); ok {
			return rec, nil
		}
		rec, err := decode()
		if err != nil {
			return nil, err
		}
		c.add(key, rec)
		return rec, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(arrow.RecordBatch), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *decodedCache) lookup(key decodedKey) (arrow.RecordBatch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*decodedEntry).rec, true
	}
	return nil, false
}

func (c *decodedCache) add(key decodedKey, rec arrow.RecordBatch) {
	e := &decodedEntry{key: key, rec: rec, bytes: columnar.RecordBytes(rec)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok || e.bytes > c.limit {
		return
	}
	c.entries[key] = c.order.PushFront(e)
	c.bytes += e.bytes
	for c.bytes > c.limit {
		last := c.order.Back()
		old := last.Value.(*decodedEntry)
		c.order.Remove(last)
		delete(c.entries, old.key)
		c.bytes -= old.bytes
	}
}

func columnsKey(columns []string) string { return strings.Join(columns, "\x00") }
