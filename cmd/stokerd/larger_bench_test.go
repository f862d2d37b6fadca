package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// BenchmarkEpochLargerThanCache reads datasets four times larger than
// stokerd's cache (memory and disk tiers together a quarter of the data)
// through a toxiproxy that makes loopback S3 behave like real S3 (20 ms
// latency, 90 MB/s per connection), and a proxy behind it that counts
// what S3 sends. Baseline, measured in the same iteration: a parallel
// reader that GETs every shard once, in file order, with as many
// connections as stokerd fetches with (--max-fetches). The cases:
//
//   - indexed-default-window: indexed beside the shards by `stoker index`,
//     read with the default window, a memory tier that holds three
//     windows (what whole-shard fetching needs: the window read, the next,
//     and the look-ahead) and a disk tier that holds one: the proportions
//     of a node whose memory is far larger than a window of shards.
//   - indexed-window-over-memory: the default window over few, larger
//     shards, with a memory tier of an eighth of the data, a fifth of one
//     window: every sample is read by its own byte range (a GET each).
//   - unindexed-window-2: counted as it is read, a window of two shards,
//     the same tiers as the case before.
//
// It reports, per case, the time to the first batch, each epoch's time
// and its ratio to the baseline, and the S3 bytes and GETs per dataset
// byte and MB.
func BenchmarkEpochLargerThanCache(b *testing.B) {
	const fetches = 8
	s3 := s3test.Start(b)
	s3.CreateBucket(b, bucket)
	small := wds.Synthetic{Shards: 512, PerShard: 8, SampleSize: 32 << 10, Seed: 12} // 512 shards of about 270 KB
	large := wds.Synthetic{Shards: 48, PerShard: 32, SampleSize: 64 << 10, Seed: 11} // 48 shards of about 2 MiB
	sizes := map[string]int64{}
	for _, d := range []struct {
		syn      wds.Synthetic
		prefixes []string
	}{{small, []string{"small"}}, {large, []string{"indexed", "plain"}}} {
		dir := b.TempDir()
		if err := d.syn.Write(dir); err != nil {
			b.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				b.Fatal(err)
			}
			for _, prefix := range d.prefixes {
				sizes[prefix] += int64(len(data))
				s3.Put(b, bucket, prefix+"/"+e.Name(), data)
			}
		}
	}
	counter := startS3Proxy(b, s3.Endpoint)
	proxy := startToxiproxy(b, strings.TrimPrefix(counter.srv.URL, "http://"))
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	bin := buildPlainStokerd(b)
	stokerCLI := filepath.Join(b.TempDir(), "stoker")
	if msg, err := exec.Command("go", "build", "-o", stokerCLI, "github.com/stoker-data/stoker/cmd/stoker").CombinedOutput(); err != nil {
		b.Fatalf("building stoker: %v\n%s", err, msg)
	}
	for _, prefix := range []string{"small", "indexed"} {
		idx := exec.Command(stokerCLI, "index", "s3://"+bucket+"/"+prefix+"/")
		idx.Env = append(os.Environ(), "AWS_ENDPOINT_URL_S3="+counter.srv.URL)
		if msg, err := idx.CombinedOutput(); err != nil {
			b.Fatalf("stoker index: %v\n%s", err, msg)
		}
	}
	counter.take()
	type result struct{ direct, ttfb, first, second time.Duration }
	for _, ds := range []struct {
		name, prefix string
		window       int
		mem, disk    float64 // of the data
	}{
		{"indexed-default-window", "small", 0, 3.0 / 16, 1.0 / 16}, // 16 windows of 32 shards: memory 3 windows, disk 1
		{"indexed-window-over-memory", "indexed", 0, 1.0 / 8, 1.0 / 8},
		{"unindexed-window-2", "plain", 2, 1.0 / 8, 1.0 / 8},
	} {
		b.Run(ds.name, func(b *testing.B) {
			size := sizes[ds.prefix]
			mem, disk := int64(float64(size)*ds.mem), int64(float64(size)*ds.disk)
			var r result
			var bytes0, bytes1 int64
			var gets0, gets1 int
			for i := 0; i < b.N; i++ {
				r.direct += readParallel(b, proxy, "s3://"+bucket+"/"+ds.prefix+"/", fetches)
				counter.take()
				ttfb, first, second, per := readLargerThanCache(b, bin, proxy, "s3://"+bucket+"/"+ds.prefix+"/", ds.window, mem, disk, fetches, counter)
				r.ttfb += ttfb
				r.first += first
				r.second += second
				bytes0 += per[0].bytes
				bytes1 += per[1].bytes
				gets0 += per[0].gets
				gets1 += per[1].gets
			}
			n := float64(b.N)
			b.ReportMetric(r.direct.Seconds()/n, "s-direct")
			b.ReportMetric(r.ttfb.Seconds()/n, "s-first-batch")
			b.ReportMetric(r.first.Seconds()/n, "s-epoch0")
			b.ReportMetric(r.second.Seconds()/n, "s-epoch1")
			b.ReportMetric(r.direct.Seconds()/r.first.Seconds(), "x-epoch0-vs-direct")
			b.ReportMetric(r.direct.Seconds()/r.second.Seconds(), "x-epoch1-vs-direct")
			b.ReportMetric(float64(bytes0)/n/float64(size), "s3-bytes/data-epoch0")
			b.ReportMetric(float64(bytes1)/n/float64(size), "s3-bytes/data-epoch1")
			b.ReportMetric(float64(gets0)/n/(float64(size)/1e6), "GETs/MB-epoch0")
			b.ReportMetric(float64(gets1)/n/(float64(size)/1e6), "GETs/MB-epoch1")
		})
	}
}

// s3Use is what S3 sent during one epoch.
type s3Use struct {
	bytes int64
	gets  int
}

// readParallel GETs every shard under prefix once, in file order, with
// conns requests in flight, and walks each shard's samples.
func readParallel(b *testing.B, endpoint, prefix string, conns int) time.Duration {
	ctx := context.Background()
	src, err := s3.New(ctx, s3.Config{Endpoint: endpoint, Region: s3test.Region})
	if err != nil {
		b.Fatal(err)
	}
	all, err := src.List(ctx, prefix)
	if err != nil {
		b.Fatal(err)
	}
	var objs []storage.Object
	for _, o := range all {
		if dataset.IsShardName(o.URL) { // not the index beside them
			objs = append(objs, o)
		}
	}
	start := time.Now()
	g := errgroup.Group{}
	g.SetLimit(conns)
	for _, o := range objs {
		g.Go(func() error {
			data, err := storage.Fetch(ctx, src, o, storage.FetchOptions{PartSize: 1 << 40, Parallel: 1})
			if err != nil {
				return err
			}
			_, err = wds.IndexBytes(data)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// readLargerThanCache starts a fresh stokerd with the given tiers over the
// proxy and reads two epochs of url through it.
func readLargerThanCache(b *testing.B, bin, endpoint, url string, window int, mem, disk int64, fetches int, counter *s3Proxy) (ttfb, first, second time.Duration, per [2]s3Use) {
	c, web, logs, stop := startBenchStokerd(b, bin, endpoint, "--memory-cache", strconv.FormatInt(mem, 10), "--disk-cache", strconv.FormatInt(disk, 10),
		"--max-fetches", strconv.Itoa(fetches), "--pprof")
	defer stop()
	epoch := func(e uint64) (ttfb, d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		for _, err := range c.Batches(ctx, stoker.Epoch{URL: url, Seed: 1, Epoch: e, BatchSize: 32, ShuffleWindow: window}) {
			if err != nil {
				b.Fatalf("epoch %d: %v\n%s", e, err, logs.String())
			}
			if ttfb == 0 {
				ttfb = time.Since(start)
			}
		}
		return ttfb, time.Since(start)
	}
	use := func() s3Use {
		var u s3Use
		for _, g := range counter.take() {
			u.bytes += g.bytes
			u.gets++
		}
		return u
	}
	profiled := profileCPU(b, web, url)
	ttfb, first = epoch(0)
	profiled()
	per[0] = use()
	_, second = epoch(1)
	per[1] = use()
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "%s: epoch 0 %s in %d GETs, epoch 1 %s in %d GETs\n", url, humanMB(per[0].bytes), per[0].gets, humanMB(per[1].bytes), per[1].gets)
	}
	return ttfb, first, second, per
}

func humanMB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// profileCPU, when STOKER_BENCH_PPROF names a folder, takes a CPU profile
// of stokerd (its --pprof endpoint) for two seconds from now and writes it
// there when the returned func is called; otherwise it does nothing.
func profileCPU(b *testing.B, web, url string) func() {
	dir := os.Getenv("STOKER_BENCH_PPROF")
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + web + "/debug/pprof/profile?seconds=2")
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Error(err)
			return
		}
		name := strings.NewReplacer("/", "_", ":", "").Replace(url) + ".pprof"
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Error(err)
		}
	}()
	return func() { <-done }
}
