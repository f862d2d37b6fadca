package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
)

// The server answers on a unix socket too, exports Prometheus metrics, and
// exits cleanly on SIGTERM.
func TestServerProcess(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "stoker.sock")
	srv := startStokerd(t, e.s3.Env(), t.TempDir(), "--unix", sock)

	c, err := stoker.Dial("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.checkEpoch(t, readAll(t, c, stoker.Epoch{URL: e.url, Seed: 2, BatchSize: 7}))

	r, err := http.Get("http://" + srv.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, m := range []string{"stoker_samples_served_total", "stoker_cache_memory_hits_total", "stoker_storage_requests_total", "stoker_stall_seconds_total"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if want := fmt.Sprintf("stoker_samples_served_total %d\n", len(e.want)); !strings.Contains(string(body), want) {
		t.Errorf("/metrics does not count the %d samples served:\n%s", len(e.want), body)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-srv.exited
	if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("stokerd exited with %d after SIGTERM:\n%s", code, srv.logs())
	}
	if !strings.Contains(srv.logs(), "draining") {
		t.Errorf("no graceful stop in the log:\n%s", srv.logs())
	}
}
