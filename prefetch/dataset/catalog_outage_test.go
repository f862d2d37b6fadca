package dataset

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// outageSource is a real file source that can be switched off: List then
// fails as an unreachable S3 does. It counts the Lists it was asked for.
type outageSource struct {
	storage.Source
	down  atomic.Bool
	lists atomic.Int32
}

func (s *outageSource) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	s.lists.Add(1)
	if s.down.Load() {
		return nil, &storage.Error{Op: "list", Object: prefix, Kind: storage.ErrUnavailable, Err: errors.New("connection refused")}
	}
	return s.Source.List(ctx, prefix)
}

// While storage is down, an open after the one that found it down uses the
// dataset opened before without trying storage again (each try waits out
// the source's retries), until OutageRetry has passed.
func TestCatalogOutageRetry(t *testing.T) {
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 3, PerShard: 4, SampleSize: 100, Seed: 1}).Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	src := &outageSource{Source: storage.NewFileSource()}
	sources := storage.NewSources(map[string]storage.Source{"file": src})
	open := func(retry time.Duration) (*Catalog, func() (*Dataset, error)) {
		cat, err := NewCatalog(CatalogConfig{Dir: filepath.Join(dir, "catalog"), ResolveTTL: time.Nanosecond, OutageRetry: retry},
			sources, fetchShards{sources}, log)
		if err != nil {
			t.Fatal(err)
		}
		url := "file://" + filepath.Join(dir, "data") + "/"
		return cat, func() (*Dataset, error) { return cat.Open(context.Background(), url, "") }
	}
	for _, tc := range []struct {
		name      string
		retry     time.Duration
		wantLists int32 // Lists for the three opens while down
	}{
		{"within OutageRetry", time.Hour, 1},
		{"OutageRetry passed", time.Nanosecond, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src.down.Store(false)
			_, openDS := open(tc.retry)
			if _, err := openDS(); err != nil {
				t.Fatal(err)
			}
			src.down.Store(true)
			before := src.lists.Load()
			for range 3 {
				ds, err := openDS()
				if err != nil || len(ds.Manifest.Shards) != 3 {
					t.Fatalf("open while storage is down: %v", err)
				}
			}
			if got := src.lists.Load() - before; got != tc.wantLists {
				t.Fatalf("%d Lists for three opens while down, want %d", got, tc.wantLists)
			}
		})
	}
}
