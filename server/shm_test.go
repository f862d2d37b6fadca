package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// serveUnix serves h's server on a unix socket too and returns its
// address ("unix:///…").
func serveUnix(tb testing.TB, h *harness) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "stoker.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = h.srv.Serve(lis) }()
	return "unix://" + path
}

// receiveAll receives st's messages into msgs, as fast as they come and
// without releasing anything, until the stream ends; then it closes msgs
// and sends the stream's end (io.EOF or its error) on errc.
func receiveAll(st stokerv1.Loader_StreamBatchesClient) (msgs chan *stokerv1.StreamBatchesResponse, errc chan error) {
	msgs, errc = make(chan *stokerv1.StreamBatchesResponse, 1024), make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				close(msgs)
				errc <- err
				return
			}
			msgs <- m
		}
	}()
	return msgs, errc
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}

// readAll reads an epoch with c and returns key → field → bytes (copied,
// since shared-memory bytes are valid only inside the loop).
func readAll(t *testing.T, c *stoker.Client, e stoker.Epoch) (map[string]map[string][]byte, []uint64) {
	t.Helper()
	out := map[string]map[string][]byte{}
	var order []uint64
	for b, err := range c.Batches(context.Background(), e) {
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Samples {
			m := map[string][]byte{}
			for _, f := range s.GetFields() {
				m[f.GetName()] = bytes.Clone(f.GetData())
			}
			out[s.GetKey()] = m
			order = append(order, s.GetPosition())
		}
	}
	return out, order
}

func TestShmEpochMatchesGRPC(t *testing.T) {
	syn := wds.Synthetic{Shards: 4, PerShard: 40, SampleSize: 70 << 10, Seed: 3}
	h := newHarness(t, syn, func(c *Config) { c.MaxPartBytes = 1 << 20 })
	addr := serveUnix(t, h)
	c, err := stoker.Dial(addr, stoker.WithSharedMemory(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := stoker.Epoch{URL: h.url, Seed: 9, Epoch: 1, BatchSize: 24}
	want, wantOrder := readAll(t, h.client, e)
	got, gotOrder := readAll(t, c, e)
	if len(got) != syn.Shards*syn.PerShard || len(got) != len(want) {
		t.Fatalf("shm read %d samples, gRPC %d, want %d", len(got), len(want), syn.Shards*syn.PerShard)
	}
	for i := range wantOrder {
		if gotOrder[i] != wantOrder[i] {
			t.Fatalf("position %d: shm %d, gRPC %d", i, gotOrder[i], wantOrder[i])
		}
	}
	for k, fs := range want {
		for name, b := range fs {
			if !bytes.Equal(got[k][name], b) {
				t.Fatalf("sample %s field %s: shm bytes differ from gRPC", k, name)
			}
		}
	}
	st := h.srv.Stats()
	if st.ShmBytesServed == 0 || st.ShmRegions != 0 || st.ShmLeases != 0 || st.ShmLeasedBytes != 0 || st.ShmRegionBytes != 0 {
		t.Fatalf("after the epoch: %d regions (%d bytes), %d leases (%d bytes), served %d",
			st.ShmRegions, st.ShmRegionBytes, st.ShmLeases, st.ShmLeasedBytes, st.ShmBytesServed)
	}
	if m, _ := filepath.Glob(filepath.Join(h.srv.shm.Dir(), fmt.Sprintf("stoker-%d-*.shm", os.Getpid()))); len(m) != 0 {
		t.Fatalf("region files left behind: %v", m)
	}
}

// TestShmSlowClientBacksUp holds every lease: the server fills the region,
// waits (a counter says so) without growing, and finishes once released.
func TestShmSlowClientBacksUp(t *testing.T) {
	const sample, region = 64 << 10, 1 << 20
	syn := wds.Synthetic{Shards: 2, PerShard: 64, SampleSize: sample, Seed: 5}
	h := newHarness(t, syn, func(c *Config) { c.MaxPartBytes = 256 << 10 })
	api := stokerv1.NewLoaderClient(dialRaw(t, serveUnix(t, h)))
	ctx := context.Background()
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 8, Shm: true, ShmRegionBytes: region})
	if err != nil {
		t.Fatal(err)
	}
	msgs, errc := receiveAll(st)
	waitFor(t, "the stream to wait for releases", func() bool { return h.srv.Stats().ShmWaits > 0 })
	s := h.srv.Stats()
	if s.ShmLeasedBytes > region || s.ShmRegionBytes != region || s.ShmLeases == 0 {
		t.Fatalf("while blocked: %d leases of %d bytes in a region of %d", s.ShmLeases, s.ShmLeasedBytes, s.ShmRegionBytes)
	}
	var region0 string
	total := 0
	for m := range msgs {
		if g := m.GetShmRegion(); g != nil {
			region0 = g.GetId()
		}
		for _, smp := range m.GetSamples() {
			for _, f := range smp.GetFields() {
				if len(f.GetData()) != 0 {
					t.Fatal("a shm message carried field bytes")
				}
			}
			total++
		}
		// The last messages' stream may have ended, freeing the region.
		if _, err := api.ReleaseShm(ctx, &stokerv1.ReleaseShmRequest{Region: region0, Leases: []uint64{m.GetShmLease().GetId()}}); err != nil && status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		if h.srv.Stats().ShmLeasedBytes > region {
			t.Fatal("leased bytes grew past the region")
		}
	}
	if err := <-errc; !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if total != syn.Shards*syn.PerShard {
		t.Fatalf("read %d samples, want %d", total, syn.Shards*syn.PerShard)
	}
	if _, err := api.ReleaseShm(ctx, &stokerv1.ReleaseShmRequest{Region: region0, Leases: []uint64{0}}); status.Code(err) != codes.NotFound {
		t.Fatalf("release after the stream ended: %v, want NotFound", err)
	}
}

// TestShmCancelledClientReleases stops reading with leases held and
// cancels: the stream's end frees the region and every lease.
func TestShmCancelledClientReleases(t *testing.T) {
	syn := wds.Synthetic{Shards: 2, PerShard: 64, SampleSize: 64 << 10, Seed: 6}
	h := newHarness(t, syn, func(c *Config) { c.MaxPartBytes = 256 << 10 })
	api := stokerv1.NewLoaderClient(dialRaw(t, serveUnix(t, h)))
	ctx, cancel := context.WithCancel(context.Background())
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 8, Shm: true, ShmRegionBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the region to fill", func() bool { return h.srv.Stats().ShmWaits > 0 })
	cancel()
	waitFor(t, "leases and region to be freed", func() bool {
		s := h.srv.Stats()
		return s.ShmRegions == 0 && s.ShmLeases == 0 && s.ShmLeasedBytes == 0 && s.ShmRegionBytes == 0
	})
}

func TestShmRefusals(t *testing.T) {
	syn := wds.Synthetic{Shards: 1, PerShard: 4, SampleSize: 3 << 20, Seed: 7}
	h := newHarness(t, syn, nil)
	ctx := context.Background()
	recvErr := func(api stokerv1.LoaderClient, req *stokerv1.StreamBatchesRequest) error {
		st, err := api.StreamBatches(ctx, req)
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err != nil {
				return err
			}
		}
	}
	tcp := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	if err := recvErr(tcp, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 2, Shm: true}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("shm over TCP: %v, want FailedPrecondition", err)
	}
	unix := stokerv1.NewLoaderClient(dialRaw(t, serveUnix(t, h)))
	if err := recvErr(unix, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 2, Shm: true, ShmRegionBytes: 1 << 40}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("huge region: %v, want InvalidArgument", err)
	}
	if err := recvErr(unix, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 2, Shm: true, ShmRegionBytes: 1 << 10}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("tiny region: %v, want InvalidArgument", err)
	}
	// A 3 MiB sample does not fit an 8 MiB region once two share a part.
	h2 := newHarness(t, syn, func(c *Config) { c.MaxPartBytes = 4 << 20; c.Shm.RegionBytes = 5 << 20 })
	unix2 := stokerv1.NewLoaderClient(dialRaw(t, serveUnix(t, h2)))
	if err := recvErr(unix2, &stokerv1.StreamBatchesRequest{Url: h2.url, BatchSize: 4, Shm: true}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("message over the region: %v, want ResourceExhausted", err)
	}
	if s := h2.srv.Stats(); s.ShmRegions != 0 || s.ShmLeases != 0 {
		t.Fatalf("after refusals: %d regions, %d leases", s.ShmRegions, s.ShmLeases)
	}
}
