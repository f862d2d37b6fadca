package prefetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// tarGz writes a .tar.gz holding one member of n zero bytes: a gzip bomb
// when n is large (zeros deflate about 1000:1).
func tarGz(t *testing.T, n int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "000.bin", Mode: 0o644, Size: n}); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zeros)) {
		if _, err := tw.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A shard over the per-shard limit fails with ErrTooLarge naming it, the
// limit and how to raise it: a gzip bomb stops inflating at the limit, so
// what the fetch allocates is bounded by the limit, not by the bomb; a
// stored object over the limit is refused before it is read. Shards within
// the limit read as before.
func TestShardsMaxShardBytes(t *testing.T) {
	const limit = 4 << 20
	dir := t.TempDir()
	files := map[string][]byte{
		"bomb.tar.gz": tarGz(t, 256<<20),
		"ok.tar.gz":   tarGz(t, 3<<20),
		"big.tar":     make([]byte, limit+512),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	tiers, err := cache.Open(cache.Config{MemoryBytes: 64 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tiers.Close()
	src := storage.NewFileSource()
	shards := NewShards(ShardsConfig{MaxShardBytes: limit}, storage.NewSources(map[string]storage.Source{"file": src}), tiers, log)
	get := func(name string) ([]byte, error) {
		o, err := src.Stat(context.Background(), "file://"+filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		r, err := shards.Get(context.Background(), o)
		if err != nil {
			return nil, err
		}
		defer r.Release()
		return bytes.Clone(r.Bytes()), nil
	}

	for _, name := range []string{"bomb.tar.gz", "big.tar"} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := get(name)
		runtime.ReadMemStats(&after)
		var e *storage.Error
		if !errors.Is(err, storage.ErrTooLarge) || !errors.As(err, &e) || !strings.HasSuffix(e.Object, "/"+name) {
			t.Fatalf("%s: got %v, want ErrTooLarge naming the object", name, err)
		}
		for _, want := range []string{"4194304", "--max-shard-size"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", name, err, want)
			}
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 4*limit {
			t.Errorf("%s: the refused fetch allocated %d bytes, limit %d", name, n, limit)
		}
		t.Logf("%s (%d bytes stored): %v", name, len(files[name]), err)
	}
	data, err := get("ok.tar.gz")
	if err != nil || len(data) < 3<<20 || len(data) > limit {
		t.Fatalf("a shard within the limit: %d bytes, %v", len(data), err)
	}
}

func TestDefaultMaxShardBytes(t *testing.T) {
	for _, tc := range []struct{ mem, want int64 }{
		{0, 256 << 20},
		{64 << 10, 256 << 20},
		{1 << 30, 1 << 30},
		{3 << 30, 3 << 30},
		{64 << 30, 4 << 30},
	} {
		if got := DefaultMaxShardBytes(tc.mem); got != tc.want {
			t.Errorf("DefaultMaxShardBytes(%d) = %d, want %d", tc.mem, got, tc.want)
		}
	}
}
