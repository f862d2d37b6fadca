package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// lockedBuffer is a log destination the server's goroutines share.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log lines whose msg is msg.
func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Every failed request is logged once, with its code, the dataset it
// named and the client's address, and counted by method and code.
func TestFailedRequestsLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 1, PerShard: 4, SampleSize: 64, Seed: 1}).Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	cfg := DefaultConfig()
	cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(dir, "cache"), 64<<20, 0
	srv, err := New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}),
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()
	api := stokerv1.NewLoaderClient(dialRaw(t, lis.Addr().String()))
	ctx := context.Background()
	missing := "file://" + filepath.Join(dir, "missing") + "/"
	good := "file://" + filepath.Join(dir, "data") + "/"

	if _, err := api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: missing}); status.Code(err) != codes.NotFound {
		t.Fatalf("open of a missing folder: %v, want NotFound", err)
	}
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: good, BatchSize: 0})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("batch size 0: %v, want InvalidArgument", err)
	}
	ts := httptest.NewServer(srv.HTTPHandler())
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/v1/prefetch", "application/json", strings.NewReader(`{"url":"`+missing+`","epochs":[0]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("prefetch of a missing folder: HTTP %d, want 404", resp.StatusCode)
	}
	// A request that works is not logged as failed.
	if _, err := api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: good}); err != nil {
		t.Fatal(err)
	}

	got := logs.lines(t, "request failed")
	want := []struct {
		api, method, code, dataset, level string
	}{
		{"grpc", "/stoker.v1.Loader/OpenDataset", "NotFound", missing, "WARN"},
		{"grpc", "/stoker.v1.Loader/StreamBatches", "InvalidArgument", good, "WARN"},
		{"http", "POST /v1/prefetch", "404", missing, "WARN"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d failure lines, want %d (one per failed request): %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		code := fmt.Sprint(g["code"]) // a gRPC code's name, or an HTTP status (a JSON number)
		client, _ := g["client"].(string)
		if g["api"] != w.api || g["method"] != w.method || code != w.code || g["dataset"] != w.dataset || g["level"] != w.level || !strings.HasPrefix(client, "127.0.0.1:") {
			t.Errorf("failure line %d: %v\nwant api=%s method=%s code=%s dataset=%s level=%s client=127.0.0.1:…", i, g, w.api, w.method, w.code, w.dataset, w.level)
		}
	}
	fams := scrape(t, srv)
	for _, w := range []map[string]string{
		{"api": "grpc", "method": "/stoker.v1.Loader/OpenDataset", "code": "NotFound"},
		{"api": "http", "method": "POST /v1/prefetch", "code": "404"},
	} {
		if m := labelled(fams, "stoker_requests_failed_total", w); m == nil || m.GetCounter().GetValue() != 1 {
			t.Errorf("stoker_requests_failed_total%v = %v, want 1", w, m)
		}
	}
}
