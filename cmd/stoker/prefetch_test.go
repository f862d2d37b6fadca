package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server"
)

// startServer serves a synthetic WebDataset of shards from a folder in
// this process and returns the server's address and the dataset's URL.
func startServer(t *testing.T, shards, perShard, sampleSize int) (addr, url string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := (wds.Synthetic{Shards: shards, PerShard: perShard, SampleSize: sampleSize, Seed: 1}).Write(data); err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(dir, "cache"), 64<<20, 128<<20
	files, err := storage.AllowFiles(storage.NewFileSource(), []string{data})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, storage.NewSources(map[string]storage.Source{"file": files}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return lis.Addr().String(), "file://" + data + "/"
}

// --wait draws a bar with the bytes done of the total, the rate and the
// time taken, then each node's part; `stoker stats` then shows the tiers
// and the distinct data, each shard once.
func TestPrefetchWaitBar(t *testing.T) {
	addr, url := startServer(t, 8, 16, 32<<10)
	r := runStoker(t, map[string]string{"STOKER_SERVER": addr}, "prefetch", url, "--wait", "--interval", "10ms")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	t.Logf("stoker prefetch --wait:\n%s", r.stderr)
	for _, re := range []string{
		`^hint \S+: 8 shards, 4\.\d MiB\n`,
		`1/1 nodes done +100% \|[^|]+\| \(4\.\d/4\.\d MiB, [\d.]+ [KMGT]?i?B/s\) \[[\dms.]+\]`, // bytes done of the total, the rate, the time taken
		`\n +\S+ +done +8/8 shards +4\.\d MiB / 4\.\d MiB`,                                     // the node's part
	} {
		if !regexp.MustCompile(re).MatchString(r.stderr) {
			t.Errorf("the output lacks %s", re)
		}
	}
	st := runStoker(t, nil, "stats", "--server", addr)
	m := regexp.MustCompile(`(?m)^memory tier +(.+) / 64 MiB\ndisk tier +(.+) / 128 MiB\ncached data +(.+) \(a shard in both tiers counts once\)$`).FindStringSubmatch(st.stdout)
	if st.code != 0 || m == nil || m[1] != m[3] {
		t.Errorf("stoker stats after the prefetch (exit %d): want the distinct data equal to the memory tier, which holds every shard (the disk tier may still be writing):\n%s%s", st.code, st.stdout, st.stderr)
	}
}

// Each status moves the bar: the nodes done, the share, the bytes done of
// the total, the rate, and the time taken and left.
func TestPrefetchBarLines(t *testing.T) {
	barThrottle = 0 // draw every update
	t.Cleanup(func() { barThrottle = 100 * time.Millisecond })
	var out bytes.Buffer
	b := newPrefetchBar(&out, 100<<20)
	for _, st := range []struct {
		done  uint64
		nodes []string
	}{{10 << 20, []string{"running", "running"}}, {40 << 20, []string{"done", "running"}}, {100 << 20, []string{"done", "done"}}} {
		s := &stokerv1.PrefetchStatusResponse{BytesDone: st.done, BytesTotal: 100 << 20}
		for _, n := range st.nodes {
			s.Nodes = append(s.Nodes, &stokerv1.PrefetchProgress{State: n})
		}
		b.update(s)
	}
	b.finish()
	drawn := strings.ReplaceAll(out.String(), "\r", "\n")
	for _, re := range []string{
		`0/2 nodes done +10% \|█{3} {27}\| \(10/100 MiB, [^)]+B/s\) \[\d+s:\d+s\]`,
		`1/2 nodes done +40% \|█{12} {18}\| \(40/100 MiB, [^)]+B/s\) \[\d+s:\d+s\]`,
		`2/2 nodes done 100% \|█{30}\| \(100/100 MiB, [^)]+B/s\) \[\d+s\]`,
	} {
		if !regexp.MustCompile(re).MatchString(drawn) {
			t.Errorf("no line matches %s in\n%s", re, drawn)
		}
	}
}
