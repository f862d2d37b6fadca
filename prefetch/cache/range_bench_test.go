package cache

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// BenchmarkDiskTierSample reads 64 KiB samples at random offsets of 8 MiB
// shards, one at a time, as a stream over a shuffled epoch does:
//
//	memory              AcquireRange from the memory tier (a pinned slice)
//	disk-range/block=B  AcquireRange from the disk tier, files in blocks of B
//	disk-range/no-kept-files  the same, opening and closing the file each time
//	disk-range/open     what opening and closing the file costs alone
//	disk-whole          the old way: Acquire of the whole entry from the disk
//	                    tier per sample (no memory tier to promote it to)
//
// The files are read through the page cache, warm after the Puts: this
// measures the cache's own cost (syscalls, copies, checksums), not the
// device. It reports samples/s, and logs each rate's ratio to memory's
// measured in the same run.
func BenchmarkDiskTierSample(b *testing.B) {
	const shards, shardSize, sample = 8, 8 << 20, 64 << 10
	src := rand.NewChaCha8([32]byte{1})
	r := rand.New(src)
	data := make([][]byte, shards)
	for i := range data {
		data[i] = make([]byte, shardSize)
		_, _ = src.Read(data[i]) // a math/rand source: never fails
	}
	type pick struct {
		shard int
		off   int64
	}
	picks := make([]pick, 4096)
	for i := range picks { // tar members start at multiples of 512 bytes
		picks[i] = pick{r.IntN(shards), r.Int64N((shardSize-sample)/512) * 512}
	}
	rates := map[string]float64{}
	run := func(name string, cfg Config, block int64, maxFiles int, read func(c *Cache, key storage.Key, off int64) Tier, want Tier) {
		b.Run(name, func(b *testing.B) {
			if cfg.DiskBytes > 0 {
				cfg.Dir = b.TempDir()
			}
			c, err := Open(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.block, c.maxFiles = block, maxFiles
			for i, d := range data {
				if err := c.Put(testKey(i), d); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(sample)
			b.ResetTimer()
			for i := range b.N {
				p := picks[i%len(picks)]
				if tier := read(c, testKey(p.shard), p.off); tier != want {
					b.Fatalf("read from tier %v, want %v", tier, want)
				}
			}
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "samples/s")
			rates[name] = rate // the last run, with the largest N, stays
		})
	}
	acquireRange := func(c *Cache, key storage.Key, off int64) Tier {
		ref, tier, err := c.AcquireRange(key, off, sample)
		if err != nil || len(ref.Bytes()) != sample {
			panic(fmt.Sprintf("AcquireRange: %v", err))
		}
		ref.Release()
		return tier
	}
	run("memory", Config{MemoryBytes: 2 * shards * shardSize}, defaultBlockSize, defaultMaxFiles, acquireRange, TierMemory)
	disk := Config{DiskBytes: 2 * shards * shardSize}
	for _, block := range []int64{4 << 10, 16 << 10, 64 << 10} {
		run(fmt.Sprintf("disk-range/block=%dK", block>>10), disk, block, defaultMaxFiles, acquireRange, TierDisk)
	}
	run("disk-range/no-kept-files", disk, defaultBlockSize, 0, acquireRange, TierDisk)
	run("disk-range/open", disk, defaultBlockSize, 0, func(c *Cache, key storage.Key, off int64) Tier {
		f, err := os.Open(c.path(key))
		if err != nil {
			panic(err)
		}
		f.Close()
		return TierDisk
	}, TierDisk)
	run("disk-whole", disk, defaultBlockSize, 0, func(c *Cache, key storage.Key, off int64) Tier {
		ref, tier, ok := c.Acquire(key)
		if !ok || len(ref.Bytes()[off:off+sample]) != sample {
			panic("Acquire missed")
		}
		ref.Release()
		return tier
	}, TierDisk)

	mem := rates["memory"]
	names := make([]string, 0, len(rates))
	for name := range rates {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if mem > 0 {
			b.Logf("%-22s %12.0f samples/s  %.4fx memory", name, rates[name], rates[name]/mem)
		}
	}
}
