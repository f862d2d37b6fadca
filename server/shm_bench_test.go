package server

import (
	"context"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// BenchmarkLocalDelivery reads the same cached epoch, in the same
// iteration, over gRPC on loopback TCP, over gRPC on a unix socket,
// through shared memory (fields viewed in the mapping, and copied once
// into a reused buffer, as a trainer copying to a pinned staging buffer
// would), and through shared memory from a second server whose memory
// tier is shared (fields are the tier's own pages: no copy on either
// side); it reports each rate and the ratios to the gRPC paths.
func BenchmarkLocalDelivery(b *testing.B) {
	for _, tc := range []struct {
		name               string
		size, count, batch int
	}{
		{"1MiB", 1 << 20, 512, 16},
		{"64KiB", 64 << 10, 4096, 128},
	} {
		b.Run(tc.name, func(b *testing.B) {
			syn := wds.Synthetic{Shards: 8, PerShard: tc.count / 8, SampleSize: tc.size, Seed: 1}
			h := newHarness(b, syn, nil)
			unixAddr := serveUnix(b, h)
			shared := newHarness(b, syn, sharedTier(int64(tc.size*tc.count)*5/4))
			sharedAddr := serveUnix(b, shared)
			dialTo := func(addr string, opts ...stoker.Option) *stoker.Client {
				c, err := stoker.Dial(addr, opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				return c
			}
			dial := func(opts ...stoker.Option) *stoker.Client { return dialTo(unixAddr, opts...) }
			paths := []struct {
				name string
				c    *stoker.Client
				copy bool
			}{
				{"tcp", h.client, false},
				{"unix", dial(), false},
				{"shm", dial(stoker.WithSharedMemory(0)), false},
				{"shm+copy", dial(stoker.WithSharedMemory(0)), true},
				{"shm-tier", dialTo(sharedAddr, stoker.WithSharedMemory(0)), false},
				{"shm-tier+copy", dialTo(sharedAddr, stoker.WithSharedMemory(0)), true},
			}
			e := stoker.Epoch{URL: h.url, Seed: 1, BatchSize: tc.batch}
			sink := make([]byte, tc.size+1<<10)
			read := func(c *stoker.Client, copyOut bool) int {
				n := 0
				for bt, err := range c.Batches(context.Background(), e) {
					if err != nil {
						b.Fatal(err)
					}
					for _, s := range bt.Samples {
						for _, f := range s.GetFields() {
							if copyOut {
								copy(sink, f.GetData())
							}
							n += len(f.GetData())
						}
					}
				}
				return n
			}
			want := read(h.client, false) // warms the cache
			if n := read(shared.client, false); n != want {
				b.Fatalf("the shared-tier server read %d bytes, want %d", n, want)
			}
			times := make([]time.Duration, len(paths))
			b.ResetTimer()
			for range b.N {
				for i, p := range paths {
					t := time.Now()
					if n := read(p.c, p.copy); n != want {
						b.Fatalf("%s read %d bytes, want %d", p.name, n, want)
					}
					times[i] += time.Since(t)
				}
			}
			b.StopTimer()
			gbps := make([]float64, len(paths))
			for i, p := range paths {
				gbps[i] = float64(want) * float64(b.N) / times[i].Seconds() / 1e9
				b.ReportMetric(gbps[i], p.name+"-GB/s")
			}
			b.ReportMetric(gbps[2]/gbps[0], "shm/tcp")
			b.ReportMetric(gbps[2]/gbps[1], "shm/unix")
			b.ReportMetric(gbps[3]/gbps[0], "shm+copy/tcp")
			b.ReportMetric(gbps[4]/gbps[0], "shm-tier/tcp")
			b.ReportMetric(gbps[4]/gbps[2], "shm-tier/shm")
			b.ReportMetric(gbps[5]/gbps[3], "shm-tier+copy/shm+copy")
			if st := shared.srv.Stats(); st.ShmTierBytes == 0 {
				b.Fatal("the shared-tier server handed out no bytes in place")
			}
			b.Logf("%s: tcp %.2f GB/s, unix %.2f GB/s, shm %.2f GB/s, shm+copy %.2f GB/s, shm-tier %.2f GB/s, shm-tier+copy %.2f GB/s; shm/tcp %.2fx, shm/unix %.2fx, shm+copy/tcp %.2fx, shm-tier+copy/tcp %.2fx, shm-tier+copy/shm+copy %.2fx",
				tc.name, gbps[0], gbps[1], gbps[2], gbps[3], gbps[4], gbps[5], gbps[2]/gbps[0], gbps[2]/gbps[1], gbps[3]/gbps[0], gbps[5]/gbps[0], gbps[5]/gbps[3])
		})
	}
}
