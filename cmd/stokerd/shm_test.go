package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// shmEnv is a stokerd serving a local synthetic dataset on TCP and on a
// unix socket.
type shmEnv struct {
	srv  *stokerd
	sock string
	url  string
	tcp  *stoker.Client
}

func newShmEnv(t *testing.T, syn wds.Synthetic) *shmEnv {
	t.Helper()
	dir := t.TempDir()
	if err := syn.Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "stoker.sock")
	srv := startStokerd(t, nil, filepath.Join(dir, "cache"), "--unix", sock, "--memory-cache", "512MiB", "--allow-file-root", filepath.Join(dir, "data"))
	c, err := stoker.Dial(srv.grpc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &shmEnv{srv: srv, sock: sock, url: "file://" + filepath.Join(dir, "data") + "/", tcp: c}
}

func (e *shmEnv) stats(t *testing.T) *stokerv1.StatsResponse {
	t.Helper()
	st, err := e.tcp.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitStats polls the server's Stats until cond holds.
func (e *shmEnv) waitStats(t *testing.T, what string, cond func(*stokerv1.StatsResponse) bool) *stokerv1.StatsResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.stats(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last stats: %v\n%s", what, st, e.srv.logs())
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}

func readJSONL(args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(binDir, "stoker"), append([]string{"read", "--jsonl"}, args...)...)
}

// TestShmReadJSONLMatchesGRPC reads an epoch with `stoker read` over gRPC
// (TCP) and with --shm over the unix socket: the JSONL lines, a SHA-256
// of every field, are the same.
func TestShmReadJSONLMatchesGRPC(t *testing.T) {
	e := newShmEnv(t, wds.Synthetic{Shards: 5, PerShard: 37, SampleSize: 100 << 10, Seed: 4})
	args := []string{e.url, "--epoch", "2", "--seed", "11", "--batch-size", "16", "--world-size", "2", "--rank", "1"}
	want, err := readJSONL(append([]string{"--server", e.srv.grpc}, args...)...).Output()
	if err != nil {
		t.Fatalf("gRPC read: %v", err)
	}
	got, err := readJSONL(append([]string{"--server", "unix://" + e.sock, "--shm", "--shm-region-mib", "16"}, args...)...).Output()
	if err != nil {
		t.Fatalf("shm read: %v\n%s", err, e.srv.logs())
	}
	if n := bytes.Count(want, []byte("\n")); n < 80 {
		t.Fatalf("gRPC read gave %d lines", n)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("shm JSONL differs from gRPC:\n%.400s\n---\n%.400s", got, want)
	}
	// The shards are in the disk tier now: --gds reads them as extents.
	gds, err := readJSONL(append([]string{"--server", "unix://" + e.sock, "--shm", "--gds"}, args...)...).Output()
	if err != nil {
		t.Fatalf("gds read: %v\n%s", err, e.srv.logs())
	}
	if !bytes.Equal(gds, want) {
		t.Fatalf("gds JSONL differs from gRPC:\n%.400s\n---\n%.400s", gds, want)
	}
	st := e.stats(t)
	if st.GetShmExtentBytes() == 0 {
		t.Fatal("the gds read took no extents")
	}
	if st.GetShmBytesServed() == 0 || st.GetShmRegions() != 0 || st.GetShmLeases() != 0 {
		t.Fatalf("after the reads: %v", st)
	}
	out, err := readJSONL("--server", e.srv.grpc, "--shm", e.url).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("not a unix socket")) {
		t.Fatalf("--shm over TCP: %v\n%s", err, out)
	}
}

// TestShmClientKilledMidEpoch stops a --shm reader with the server's
// region full of its leases, kills it, and checks the server frees every
// lease and the region, then serves another shm reader.
func TestShmClientKilledMidEpoch(t *testing.T) {
	e := newShmEnv(t, wds.Synthetic{Shards: 4, PerShard: 1000, SampleSize: 16 << 10, Seed: 8})
	base := e.stats(t)
	cmd := readJSONL("--server", "unix://"+e.sock, "--shm", "--shm-region-mib", "8", "--batch-size", "32", e.url)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Read a few lines, then stop reading: the reader blocks on its full
	// stdout while holding a batch, and the server fills the region.
	sc := bufio.NewScanner(stdout)
	for i := 0; i < 10 && sc.Scan(); i++ {
	}
	held := e.waitStats(t, "the reader's region to fill", func(st *stokerv1.StatsResponse) bool {
		return st.GetShmWaits() > base.GetShmWaits() && st.GetShmLeases() > 0
	})
	if held.GetShmRegions() != 1 || held.GetShmLeasedBytes() > 8<<20 || held.GetShmRegionBytes() != 8<<20 {
		t.Fatalf("while the reader is stuck: %d regions of %d bytes, %d leased bytes", held.GetShmRegions(), held.GetShmRegionBytes(), held.GetShmLeasedBytes())
	}
	files, _ := filepath.Glob(fmt.Sprintf("/dev/shm/stoker-%d-*.shm", e.srv.cmd.Process.Pid))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("the killed reader exited with status 0")
	}
	e.waitStats(t, "the dead reader's leases to be freed", func(st *stokerv1.StatsResponse) bool {
		return st.GetShmRegions() == 0 && st.GetShmLeases() == 0 && st.GetShmLeasedBytes() == 0 && st.GetShmRegionBytes() == 0
	})
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("region file %s outlived its stream", f)
		}
	}
	out, err := readJSONL("--server", "unix://"+e.sock, "--shm", "--batch-size", "64", e.url).Output()
	if err != nil {
		t.Fatalf("shm read after the kill: %v\n%s", err, e.srv.logs())
	}
	if n := bytes.Count(out, []byte("\n")); n != 4000 {
		t.Fatalf("shm read after the kill: %d samples, want 4000", n)
	}
}

// TestDoctorRuns runs `stoker doctor` against a live server.
func TestDoctorRuns(t *testing.T) {
	e := newShmEnv(t, wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 10, Seed: 1})
	out, err := exec.Command(filepath.Join(binDir, "stoker"), "doctor", "--unix", e.sock, "--server", "unix://"+e.sock).CombinedOutput()
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range []string{"this host:", "gpus:", "mlock limit:", "huge pages", "cufile:", "unix socket:   " + e.sock + " (present)",
		"stoker will use:", "local delivery: shared memory", "server unix://" + e.sock, "shm:"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if !bytes.Contains([]byte(e.srv.logs()), []byte("gpu host")) {
		t.Fatal("stokerd did not log what it found on the host")
	}
}
