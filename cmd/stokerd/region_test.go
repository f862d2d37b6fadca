package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// TestMemoryRegionModes serves one dataset from three stokerd processes,
// one per --memory-region, with a memory tier smaller than the dataset so
// that the region evicts and reuses its bytes: two epochs read through
// each are the same JSONL (a SHA-256 of every field), and so are two read
// through shared memory from the locked server's shared tier. The locked
// server is locked exactly when this host lets it lock 48 MiB, and says
// why not otherwise; doctor shows what each server does.
func TestMemoryRegionModes(t *testing.T) {
	dir := t.TempDir()
	syn := wds.Synthetic{Shards: 12, PerShard: 20, SampleSize: 256 << 10, Seed: 8} // 60 MiB
	if err := syn.Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(dir, "data") + "/"
	host, _ := gpu.Probe()
	lockable := host.LockableBytes(48 << 20)
	var first []byte
	for _, mode := range []string{"heap", "auto", "locked"} {
		sock := filepath.Join(dir, mode+".sock")
		srv := startStokerd(t, nil, filepath.Join(dir, "cache-"+mode), "--memory-region", mode, "--memory-cache", "48MiB", "--disk-cache", "0", "--unix", sock,
			"--allow-file-root", filepath.Join(dir, "data"))
		read := func(args ...string) []byte {
			var got []byte
			for _, epoch := range []string{"0", "1"} {
				out, err := readJSONL(append(args, "--epoch", epoch, "--seed", "3", "--batch-size", "8", url)...).Output()
				if err != nil {
					t.Fatalf("%s: read epoch %s (%v): %v\n%s", mode, epoch, args, err, srv.logs())
				}
				got = append(got, out...)
			}
			return got
		}
		got := read("--server", srv.grpc)
		if mode == "locked" { // a shared tier: shm reads take fields in place
			if shm := read("--server", "unix://"+sock, "--shm"); !bytes.Equal(shm, got) {
				t.Fatal("locked: the shm read through the shared tier differs from gRPC")
			}
			c, err := stoker.Dial(srv.grpc)
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.Stats(context.Background())
			c.Close()
			if err != nil || st.GetShmTierBytes() == 0 || st.GetHost().GetMemoryRegion().GetSharedPath() == "" {
				t.Fatalf("locked: stats %v, %v: want bytes handed out in the shared tier", st, err)
			}
		}
		if n := bytes.Count(got, []byte("\n")); n != 2*240 {
			t.Fatalf("%s: %d samples in two epochs, want 480", mode, n)
		}
		if first == nil {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Fatalf("--memory-region %s delivered other bytes than heap", mode)
		}

		doc, err := exec.Command(filepath.Join(binDir, "stoker"), "doctor", "--server", srv.grpc).CombinedOutput()
		if err != nil {
			t.Fatalf("doctor: %v\n%s", err, doc)
		}
		var want []string
		switch {
		case mode == "heap":
			want = []string{"memory tier:   on the Go heap (--memory-region heap)"}
		case mode == "locked" && lockable:
			want = []string{"memory tier:   one mapped region of 48 MiB", "locked:      true (--memory-region locked)", "shared:      /"}
		case mode == "locked":
			want = []string{"memory tier:   one mapped region of 48 MiB", "locked:      false (the mlock limit", "shared:      /"}
		case len(host.GPUs.Devices) == 0:
			want = []string{"memory tier:   one mapped region of 48 MiB", "locked:      false (no GPU on this host"}
		default:
			want = []string{"memory tier:   one mapped region of 48 MiB", "GPU(s) copy from it by DMA"}
		}
		for _, w := range want {
			if !strings.Contains(string(doc), w) {
				t.Fatalf("%s: doctor output lacks %q:\n%s", mode, w, doc)
			}
		}
		if mode != "heap" && !strings.Contains(srv.logs(), "memory tier: one mapped region") {
			t.Fatalf("%s: stokerd did not log its memory region:\n%s", mode, srv.logs())
		}
	}
}
