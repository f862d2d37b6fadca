package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/status"
)

func get(t *testing.T, h http.Handler, path string, mutate func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if mutate != nil {
		mutate(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// While a stream is open, /v1/status lists it (dataset, rank, position,
// samples), the cache's figures and the storage traffic; the page and its
// files are served with a policy that allows only this origin's scripts.
func TestStatusSnapshotOfOpenStream(t *testing.T) {
	// 32 MiB for the rank, past gRPC's 8 MiB window: the stream stays open
	// while the test reads only its first batches.
	h := newHarness(t, wds.Synthetic{Shards: 4, PerShard: 16, SampleSize: 1 << 20, Seed: 1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 4, Seed: 1, Rank: 1, WorldSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var after uint64
	for range 3 {
		m, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		after = m.GetCursor().GetPosition()
	}
	handler := h.srv.HTTPHandler()
	// The stream has sent 3 steps; its goroutine may be building the 4th.
	rec := get(t, handler, status.Path, nil)
	var snap status.Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
		t.Fatalf("%s: %v: %s", status.Path, err, rec.Body)
	}
	if len(snap.Streams) != 1 {
		t.Fatalf("%d streams, want 1: %+v", len(snap.Streams), snap.Streams)
	}
	s := snap.Streams[0]
	if s.Dataset != h.url || s.Rank != 1 || s.WorldSize != 2 || s.BatchSize != 4 || s.Samples < 12 || s.Position < int64(after) || s.Total != 64 || !strings.HasPrefix(s.Client, "127.0.0.1:") {
		t.Fatalf("stream %+v; want dataset %s, rank 1 of 2, batch 4, >= 12 samples, position >= %d, total 64, a loopback client", s, h.url, after)
	}
	if snap.Cache.Memory.Capacity != 1<<30 || snap.Cache.Memory.Bytes == 0 || snap.Storage.Requests == 0 || snap.Storage.Reads == 0 || snap.Storage.ReadP99 <= 0 {
		t.Fatalf("cache %+v storage %+v: want a 1 GiB memory tier holding shards, and storage reads with a latency", snap.Cache, snap.Storage)
	}
	if len(snap.Cluster.Members) != 1 || !snap.Cluster.Members[0].Self || snap.Cluster.Enabled {
		t.Fatalf("cluster %+v: want this node alone", snap.Cluster)
	}
	cancel()

	page := get(t, handler, "/", nil)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `<script src="/status/app.js"`) ||
		!strings.Contains(page.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("/: %d %v\n%s", page.Code, page.Header(), page.Body)
	}
	for path, ctype := range map[string]string{"/status/app.js": "javascript", "/status/style.css": "text/css"} {
		if r := get(t, handler, path, nil); r.Code != http.StatusOK || !strings.Contains(r.Header().Get("Content-Type"), ctype) || r.Body.Len() < 500 {
			t.Errorf("%s: %d %q, %d bytes", path, r.Code, r.Header().Get("Content-Type"), r.Body.Len())
		}
	}
	if r := get(t, handler, "/status/missing.js", nil); r.Code != http.StatusNotFound {
		t.Errorf("/status/missing.js: %d, want 404", r.Code)
	}
}

// With tokens the page obeys the HTTP port's auth: refused without one
// (asking a browser for Basic credentials), served with the token as a
// bearer or as the Basic password; a Basic password never authorizes a
// POST.
func TestStatusPageAuth(t *testing.T) {
	src := &tokens{}
	src.set("s3cret")
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 64, Seed: 1}, func(c *Config) { c.Auth = src })
	handler := h.srv.HTTPHandler()
	for _, path := range []string{"/", status.Path, "/status/app.js"} {
		r := get(t, handler, path, nil)
		if r.Code != http.StatusUnauthorized || !strings.Contains(strings.Join(r.Header().Values("WWW-Authenticate"), " "), "Basic") {
			t.Fatalf("%s without a token: %d %v, want 401 asking for Basic", path, r.Code, r.Header())
		}
		if r := get(t, handler, path, func(q *http.Request) { q.Header.Set("Authorization", "Bearer s3cret") }); r.Code != http.StatusOK {
			t.Fatalf("%s with the bearer token: %d", path, r.Code)
		}
		if r := get(t, handler, path, func(q *http.Request) { q.SetBasicAuth("ops", "s3cret") }); r.Code != http.StatusOK {
			t.Fatalf("%s with the token as Basic password: %d", path, r.Code)
		}
		if r := get(t, handler, path, func(q *http.Request) { q.SetBasicAuth("ops", "wrong") }); r.Code != http.StatusUnauthorized {
			t.Fatalf("%s with a wrong Basic password: %d", path, r.Code)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/prefetch", strings.NewReader(`{"url":"`+h.url+`","epochs":[0]}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("ops", "s3cret")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("POST /v1/prefetch with Basic credentials: %d, want 401", rec.Code)
	}
}

// quantile interpolates within buckets as histogram_quantile does.
func TestQuantile(t *testing.T) {
	bounds := []float64{1, 2, 4}
	cum := []uint64{10, 30, 40}
	for _, c := range []struct{ q, want float64 }{{0.25, 1}, {0.5, 1.5}, {0.75, 2}, {0.875, 3}, {1, 4}} {
		if got := quantile(c.q, bounds, cum, 40); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := quantile(0.99, nil, nil, 0); got != 0 {
		t.Errorf("quantile of nothing = %v", got)
	}
}
