package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
)

// gzipBomb returns a .tar.gz whose tar is one member of zeros, about
// inflated bytes in all: a tar header, then 1 MiB gzip members of zeros
// (gzip readers read concatenated members as one stream), about 1000:1.
func gzipBomb(t *testing.T, inflated int64) []byte {
	t.Helper()
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	mib := (inflated - 512) >> 20
	var hdr bytes.Buffer
	if err := tar.NewWriter(&hdr).WriteHeader(&tar.Header{Name: "000000.bin", Mode: 0o644, Size: mib << 20, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	zeros := gz(make([]byte, 1<<20))
	return append(gz(hdr.Bytes()), bytes.Repeat(zeros, int(mib))...)
}

// vmHWM returns the peak resident memory of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// A gzip bomb (a 4 GiB tar in a few MB of gzip) is refused with
// ResourceExhausted naming the object and the per-shard limit, while the
// server's peak memory stays far below what the bomb inflates to; a
// normal epoch read beside it is exact.
func TestGzipBomb(t *testing.T) {
	const inflated = 4 << 30
	e := newEnv(t) // --memory-cache 64MiB: a per-shard limit of 256 MiB
	bomb := gzipBomb(t, inflated)
	e.s3.Put(t, bucket, "bomb/shard-000000.tar.gz", bomb)
	before := vmHWM(t, e.srv.cmd.Process.Pid)

	var wg sync.WaitGroup
	wg.Go(func() { e.checkEpoch(t, readAll(t, e.client, stoker.Epoch{URL: e.url, Seed: 2, BatchSize: 8})) })
	err := firstErr(e.client, stoker.Epoch{URL: "s3://" + bucket + "/bomb/", BatchSize: 4})
	wg.Wait()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	for _, want := range []string{"bomb/shard-000000.tar.gz", strconv.Itoa(256 << 20), "--max-shard-size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	peak := vmHWM(t, e.srv.cmd.Process.Pid)
	t.Logf("a %d-byte bomb inflating to %d MiB: %v; stokerd VmHWM %d MiB before, %d MiB after", len(bomb), inflated>>20, err, before>>20, peak>>20)
	if peak > 1<<30 {
		t.Errorf("stokerd's peak memory reached %d MiB refusing a bomb of %d MiB with a 256 MiB limit", peak>>20, inflated>>20)
	}
}
