package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// BenchmarkWarmEpochFromDisk reads a warm epoch of 64 KiB samples through
// a server whose memory tier holds the whole dataset, and, in the same
// iteration, through one whose memory tier holds an eighth of it and whose
// disk tier holds it all (each sample then read from the disk tier by its
// own blocks). It reports both rates and their ratio (the goal is >= 0.7).
func BenchmarkWarmEpochFromDisk(b *testing.B) {
	syn := wds.Synthetic{Shards: 32, PerShard: 64, SampleSize: 64 << 10, Seed: 4} // 32 shards of 4 MiB
	dir := b.TempDir()
	if err := syn.Write(filepath.Join(dir, "data")); err != nil {
		b.Fatal(err)
	}
	data := int64(syn.Shards*syn.PerShard) * int64(syn.SampleSize)
	mem := serveDir(b, dir, 4*data, func(c *Config) { c.Cache.Dir = filepath.Join(b.TempDir(), "mem") })
	disk := serveDir(b, dir, data/8, func(c *Config) {
		c.Cache.Dir = filepath.Join(b.TempDir(), "disk")
		c.Cache.DiskBytes = 4 * data
	})
	e := stoker.Epoch{URL: mem.url, Seed: 1, BatchSize: 32}
	epoch := func(h *harness) (time.Duration, int) {
		t := time.Now()
		n := 0
		for bt, err := range h.client.Batches(context.Background(), e) {
			if err != nil {
				b.Fatal(err)
			}
			n += len(bt.Samples)
		}
		return time.Since(t), n
	}
	for _, h := range []*harness{mem, disk} { // epoch 0: fetch; the timed epochs are warm
		epoch(h)
	}
	var tm, td time.Duration
	var samples int
	b.ResetTimer()
	for range b.N {
		d, n := epoch(mem)
		tm += d
		samples += n
		d, _ = epoch(disk)
		td += d
	}
	b.StopTimer()
	st := disk.srv.Stats()
	memRate, diskRate := float64(samples)/tm.Seconds(), float64(samples)/td.Seconds()
	b.ReportMetric(memRate, "samples/s-memory")
	b.ReportMetric(diskRate, "samples/s-disk")
	b.ReportMetric(diskRate/memRate, "ratio")
	b.Logf("warm epoch: memory tier %.0f samples/s, disk tier %.0f samples/s, ratio %.2f (disk range hits %d, storage reads %d)",
		memRate, diskRate, diskRate/memRate, st.GetDiskRangeHits(), st.GetStorageRequests())
}
