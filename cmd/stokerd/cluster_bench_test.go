package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// toxiproxyInstall installs the toxiproxy release the benchmark uses.
const toxiproxyInstall = "make tools (go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0, renamed toxiproxy-server)"

// BenchmarkEpochS3VersusStoker reads one dataset through a toxiproxy that
// makes loopback S3 behave like real S3 (20 ms latency, 90 MB/s per
// connection): a trainer reading the shards directly one after another
// (as webdataset does), Stoker's first epoch (open, index and stream, all
// fetched through the proxy), and Stoker's second epoch (from its cache).
// It reports the three times and the ratios to the direct read, measured
// in the same iteration.
func BenchmarkEpochS3VersusStoker(b *testing.B) {
	s3 := s3test.Start(b)
	s3.CreateBucket(b, bucket)
	syn := wds.Synthetic{Shards: 16, PerShard: 64, SampleSize: 64 << 10, Seed: 9} // 16 shards of about 4 MiB
	dir := b.TempDir()
	if err := syn.Write(dir); err != nil {
		b.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		s3.Put(b, bucket, "bench/"+e.Name(), data)
		names = append(names, e.Name())
	}
	proxy := startToxiproxy(b, strings.TrimPrefix(s3.Endpoint, "http://"))
	stokerd := buildPlainStokerd(b)
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	url := "s3://" + bucket + "/bench/"
	var direct, first, second time.Duration
	for i := 0; i < b.N; i++ {
		direct += readDirect(b, proxy, names)
		f, s := readThroughStoker(b, stokerd, proxy, url)
		first += f
		second += s
	}
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()/n, "s-direct")
	b.ReportMetric(first.Seconds()/n, "s-stoker-epoch1")
	b.ReportMetric(second.Seconds()/n, "s-stoker-epoch2")
	b.ReportMetric(direct.Seconds()/first.Seconds(), "x-epoch1-vs-direct")
	b.ReportMetric(direct.Seconds()/second.Seconds(), "x-epoch2-vs-direct")
}

// readDirect reads every shard with one GET each, one after another, and
// walks its samples, as a webdataset trainer does.
func readDirect(b *testing.B, endpoint string, names []string) time.Duration {
	ctx := context.Background()
	src, err := s3.New(ctx, s3.Config{Endpoint: endpoint, Region: s3test.Region})
	if err != nil {
		b.Fatal(err)
	}
	objs, err := src.List(ctx, "s3://"+bucket+"/bench/") // sizes and ETags, as a shard list would give them
	if err != nil || len(objs) != len(names) {
		b.Fatalf("listing: %d objects, %v", len(objs), err)
	}
	start := time.Now()
	for _, o := range objs {
		data, err := storage.Fetch(ctx, src, o, storage.FetchOptions{PartSize: 1 << 40, Parallel: 1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wds.IndexBytes(data); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// readThroughStoker starts a fresh stokerd over the proxy and times two
// epochs read through it.
func readThroughStoker(b *testing.B, bin, endpoint, url string) (first, second time.Duration) {
	c, _, logs, stop := startBenchStokerd(b, bin, endpoint, "--memory-cache", "256MiB")
	defer stop()
	epoch := func(e uint64) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		for _, err := range c.Batches(ctx, stoker.Epoch{URL: url, Seed: 1, Epoch: e, BatchSize: 64, ShuffleWindow: 4}) {
			if err != nil {
				b.Fatalf("epoch %d: %v\n%s", e, err, logs.String())
			}
		}
		return time.Since(start)
	}
	first = epoch(0)
	second = epoch(1)
	return first, second
}

// startBenchStokerd starts stokerd (bin) with S3 at endpoint, a fresh
// cache folder and args, waits until it is healthy, and dials it; stop
// closes the client and kills the server. web is its HTTP address, logs
// what it printed.
func startBenchStokerd(b *testing.B, bin, endpoint string, args ...string) (c *stoker.Client, web string, logs *bytes.Buffer, stop func()) {
	grpcAddr := freeAddr(b)
	web = freeAddr(b)
	cmd := exec.Command(bin, append([]string{"--listen", grpcAddr, "--http", web, "--cache-dir", b.TempDir(), "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL_S3="+endpoint)
	logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	kill := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	waitHealthy(b, web, logs)
	c, err := stoker.Dial(grpcAddr)
	if err != nil {
		kill()
		b.Fatal(err)
	}
	return c, web, logs, func() { c.Close(); kill() }
}

func waitHealthy(b *testing.B, web string, logs *bytes.Buffer) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, err := http.Get("http://" + web + "/healthz"); err == nil {
			r.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("stokerd not healthy:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// buildPlainStokerd builds stokerd without the race detector, which the
// tests' binaries carry and which would distort the timings.
func buildPlainStokerd(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "stokerd")
	if msg, err := exec.Command("go", "build", "-o", out, "github.com/stoker-data/stoker/cmd/stokerd").CombinedOutput(); err != nil {
		b.Fatalf("building stokerd: %v\n%s", err, msg)
	}
	return out
}

// startToxiproxy runs toxiproxy-server with one proxy to upstream that adds
// 20 ms of latency and limits every connection to 90 MB/s; it returns the
// proxy's endpoint URL.
func startToxiproxy(b *testing.B, upstream string) string {
	bin, err := exec.LookPath("toxiproxy-server")
	if err != nil {
		bin = filepath.Join(build.Default.GOPATH, "bin", "toxiproxy-server")
		if _, serr := os.Stat(bin); serr != nil {
			b.Fatalf("toxiproxy-server is not installed: %s", toxiproxyInstall)
		}
	}
	api := freeAddr(b)
	host, port, _ := strings.Cut(api, ":")
	cmd := exec.Command(bin, "-host", host, "-port", port)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, err := http.Get("http://" + api + "/version"); err == nil {
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("toxiproxy did not start")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	listen := freeAddr(b)
	post := func(path string, v any) {
		body, _ := json.Marshal(v)
		r, err := http.Post("http://"+api+path, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode/100 != 2 {
			b.Fatalf("toxiproxy %s: %s", path, r.Status)
		}
	}
	post("/proxies", map[string]any{"name": "s3", "listen": listen, "upstream": upstream, "enabled": true})
	post("/proxies/s3/toxics", map[string]any{"name": "latency", "type": "latency", "stream": "downstream", "attributes": map[string]any{"latency": 20}})
	post("/proxies/s3/toxics", map[string]any{"name": "bandwidth", "type": "bandwidth", "stream": "downstream", "attributes": map[string]any{"rate": 90_000}}) // KB/s, per connection
	return fmt.Sprintf("http://%s", listen)
}
