package server

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// openStream opens a stream on conn and receives its first message: nil
// when the stream was accepted (it stays open, unread, until ctx ends),
// else the error it was refused with.
func openStream(ctx context.Context, conn *grpc.ClientConn, req *stokerv1.StreamBatchesRequest) error {
	st, err := stokerv1.NewLoaderClient(conn).StreamBatches(ctx, req)
	if err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

// wantExhausted fails unless err is RESOURCE_EXHAUSTED naming flag.
func wantExhausted(t *testing.T, what string, err error, flag string) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), flag) {
		t.Fatalf("%s: %v, want ResourceExhausted naming %s", what, err, flag)
	}
}

// heapInUse is the Go heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Streams past the limit of one connection, or of the server, are refused
// with RESOURCE_EXHAUSTED naming the limit; closed streams give their
// place back, and the heap they used with it.
func TestStreamLimits(t *testing.T) {
	// 16 MiB an epoch, twice the connection's flow-control window: an
	// unread stream stays open.
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 8, SampleSize: 1 << 20, Seed: 4}, func(c *Config) {
		c.Limits = Limits{MaxStreams: 6, MaxStreamsPerConn: 4}
	})
	req := &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 1, Seed: 3}
	// Warm the cache, so the heap measured below holds no shard.
	for _, err := range h.client.Batches(context.Background(), stoker.Epoch{URL: h.url, BatchSize: 4}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	before := heapInUse()

	ctx, cancel := context.WithCancel(context.Background())
	a, b := dialRaw(t, h.addr), dialRaw(t, h.addr)
	for i := range 4 {
		if err := openStream(ctx, a, req); err != nil {
			t.Fatalf("stream %d on connection a: %v", i, err)
		}
	}
	wantExhausted(t, "a fifth stream on one connection", openStream(ctx, a, req), "--max-streams-per-conn 4")
	for i := range 2 {
		if err := openStream(ctx, b, req); err != nil {
			t.Fatalf("stream %d on connection b: %v", i, err)
		}
	}
	wantExhausted(t, "a seventh stream on the server", openStream(ctx, b, req), "--max-streams 6")
	during := heapInUse()
	if got := counterValue(t, h.srv.security.rejected.WithLabelValues("streams_per_conn")); got != 1 {
		t.Errorf("stoker_limit_rejections_total{limit=streams_per_conn} = %v, want 1", got)
	}

	cancel()
	waitFor(t, "the streams to close", func() bool { n, _, _ := h.srv.limits.held(); return n == 0 })
	after := heapInUse()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	if err := openStream(ctx, a, req); err != nil {
		t.Fatalf("a stream after the others closed: %v", err)
	}
	t.Logf("heap in use: %d MiB before, %d MiB with 6 streams open, %d MiB after they closed", before>>20, during>>20, after>>20)
	if after > before+32<<20 {
		t.Errorf("the heap grew from %d to %d MiB after the streams closed", before>>20, after>>20)
	}
}

// Shared-memory regions count against a byte limit per connection and
// one per server.
func TestShmLimits(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 8, SampleSize: 1 << 20, Seed: 4}, func(c *Config) {
		c.Limits = Limits{MaxShmBytesPerConn: 32 << 20, MaxShmBytes: 48 << 20}
	})
	addr := serveUnix(t, h)
	req := &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 2, Shm: true, ShmRegionBytes: 16 << 20}
	ctx, cancel := context.WithCancel(context.Background())
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for i := range 2 {
		if err := openStream(ctx, a, req); err != nil {
			t.Fatalf("region %d on connection a: %v", i, err)
		}
	}
	wantExhausted(t, "a third region on one connection", openStream(ctx, a, req), "--max-shm-per-conn 32 MiB")
	if err := openStream(ctx, b, req); err != nil {
		t.Fatalf("a region on connection b: %v", err)
	}
	wantExhausted(t, "a fourth region on the server", openStream(ctx, b, req), "--max-shm 48 MiB")
	if _, shm, _ := h.srv.limits.held(); shm != 48<<20 {
		t.Errorf("%d shm bytes held, want 48 MiB", shm)
	}
	cancel()
	waitFor(t, "the regions to close", func() bool { _, shm, conns := h.srv.limits.held(); return shm == 0 && conns == 0 })
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	if err := openStream(ctx, b, req); err != nil {
		t.Fatalf("a region after the others closed: %v", err)
	}
}

// A burst of streams asks for a trim once the open streams fall to a
// quarter of its peak; a few streams coming and going never do.
func TestLimiterAsksForATrimAfterABurst(t *testing.T) {
	bursts := 0
	l := newLimiter(Limits{MaxStreamsPerConn: 1000, MaxStreams: 1000}, func(string) {}, func() { bursts++ })
	ctx := context.Background()
	take := func(n int) []func() {
		var rs []func()
		for range n {
			r, err := l.acquire(ctx, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	small := take(trimMinPeak - 1)
	for _, r := range small {
		r()
	}
	if bursts != 0 {
		t.Fatalf("%d trims after %d streams, want none", bursts, trimMinPeak-1)
	}
	big := take(40)
	for i, r := range big {
		r()
		r() // a second release is a no-op
		if want := map[bool]int{true: 1, false: 0}[i >= 29]; bursts != want {
			t.Fatalf("after %d of 40 closed: %d trims, want %d", i+1, bursts, want)
		}
	}
	if n, shm, conns := l.held(); n != 0 || shm != 0 || conns != 0 {
		t.Fatalf("held %d streams, %d shm bytes, %d connections after every release", n, shm, conns)
	}
}

// A region kept past its stream shrinks its share of the limits to what
// it still takes in one step: never refused, even with the limits full,
// and its release gives back only what is kept.
func TestLimiterShrinkIsNeverRefused(t *testing.T) {
	l := newLimiter(Limits{MaxShmBytesPerConn: 100, MaxShmBytes: 100, MaxStreamsPerConn: 10, MaxStreams: 10}, func(string) {}, func() {})
	ctx := context.Background()
	whole, err := l.acquire(ctx, 0, 60)
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.acquire(ctx, 0, 40) // the limits are full now
	if err != nil {
		t.Fatal(err)
	}
	_ = whole // shrink replaces it: it is not called
	kept := l.shrink(ctx, 60, 8)
	if _, shm, _ := l.held(); shm != 48 {
		t.Fatalf("%d shm bytes held after the shrink, want 40 + 8", shm)
	}
	if _, err := l.acquire(ctx, 0, 53); err == nil {
		t.Fatal("53 more bytes were taken with 48 of 100 held")
	}
	kept()
	kept() // once
	other()
	if _, shm, conns := l.held(); shm != 0 || conns != 0 {
		t.Fatalf("%d shm bytes and %d connections held after every release", shm, conns)
	}
}
