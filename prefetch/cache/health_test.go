package cache

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// A disk that fails every write gives a few log lines, not one per shard:
// the first failure, then one saying the tier is off for writes; while
// off, writes are not tried, except one a minute; when one succeeds the
// tier is on again, and says so.
func TestCacheDiskFailuresRateLimited(t *testing.T) {
	const n, kib = 40, 1 << 10
	dir := filepath.Join(t.TempDir(), "cache")
	c, logs := openTestCache(t, Config{MemoryBytes: 1 << 20, DiskBytes: 1 << 20, Dir: dir})
	clock := &testClock{now: time.Unix(1_000_000, 0)}
	c.diskHealth.clockFunc = clock.Now
	// The disk "fails": its folder is now a file, so every write fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		k := testKey(i)
		if err := c.PutAsync(k, testData(k, kib)); err != nil && !strings.Contains(err.Error(), "not a directory") {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { put(i) })
	}
	wg.Wait()
	waitWrites(c)
	warns := strings.Count(logs.String(), "level=WARN")
	if warns > 2 || !strings.Contains(logs.String(), "disk tier off for writes") {
		t.Fatalf("%d failed writes gave %d warnings; want at most 2, one saying the tier is off:\n%s", n, warns, logs)
	}
	m := c.Metrics()
	// Writes run at once: those tried before the tier went off still fail.
	if m.Errors < diskOffAfter || m.Errors > n/2 || m.Errors+m.Disk.Bypasses != n {
		t.Errorf("errors %d, disk bypasses %d; want about %d tried and failed, the rest of %d not tried", m.Errors, m.Disk.Bypasses, diskOffAfter, n)
	}

	// A minute on, the disk is back: one write is tried, and it works.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	put(n) // within the minute: not tried
	waitWrites(c)
	clock.add(diskRetryEvery)
	put(n + 1)
	waitWrites(c)
	put(n + 2)
	waitWrites(c)
	if tier := c.Contains(testKey(n)); tier != TierMemory {
		t.Errorf("an entry put while the tier was off is in tier %v, want memory only", tier)
	}
	if got := c.Metrics().Disk.Entries; got != 2 {
		t.Errorf("%d disk entries after the disk came back, want 2", got)
	}
	if !strings.Contains(logs.String(), "disk tier back on for writes") {
		t.Errorf("no line says the disk tier is back:\n%s", logs)
	}
}

// waitWrites waits for PutAsync's background disk writes: they hold
// c.life shared until done.
func waitWrites(c *Cache) {
	c.life.Lock()
	c.life.Unlock() //nolint:staticcheck // an empty critical section: a barrier
}
