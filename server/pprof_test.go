package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Go's profiles are served under /debug/pprof/ only when Profiling is on.
func TestProfilingEndpoint(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(t.TempDir(), "cache"), 16<<20, 0
		cfg.Profiling = on
		srv, err := New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.HTTPHandler())
		resp, err := http.Get(ts.URL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ts.Close()
		served := resp.StatusCode == http.StatusOK && strings.Contains(string(body), "goroutine profile")
		if served != on {
			t.Errorf("Profiling %v: /debug/pprof/goroutine answered %d (%.80q), served %v", on, resp.StatusCode, body, served)
		}
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
