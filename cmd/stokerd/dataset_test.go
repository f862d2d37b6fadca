package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sampleData is what a test wrote: key → field name → bytes.
type sampleData map[string]map[string][]byte

// shardFile is one shard to upload: its object name and bytes.
type shardFile struct {
	name string
	data []byte
}

// goTarShard writes samples with archive/tar in the given format.
func goTarShard(t testing.TB, format tar.Format, keys []string, want sampleData, r *rand.Rand) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, k := range keys {
		fields := map[string][]byte{
			"jpg":     randBytes(r, 1+r.IntN(40<<10)),
			"cls":     []byte(fmt.Sprint(r.IntN(1000))),
			"seg.png": randBytes(r, r.IntN(3000)),
		}
		want[k] = fields
		for _, ext := range []string{"cls", "jpg", "seg.png"} {
			h := &tar.Header{Name: k + "." + ext, Mode: 0o644, Size: int64(len(fields[ext])), Typeflag: tar.TypeReg, Format: format}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(fields[ext]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gnuTarShard writes samples to files and packs them with the GNU tar
// command (directories included, optionally gzipped).
func gnuTarShard(t testing.TB, keys []string, want sampleData, r *rand.Rand, gzip bool) []byte {
	t.Helper()
	if _, err := exec.LookPath("tar"); err != nil {
		t.Fatalf("GNU tar is needed to write test shards: %v", err)
	}
	dir := t.TempDir()
	for _, k := range keys {
		fields := map[string][]byte{"txt": []byte("caption of " + k), "npy": randBytes(r, 1+r.IntN(8<<10))}
		want[k] = fields
		for ext, data := range fields {
			p := filepath.Join(dir, "src", k+"."+ext)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := filepath.Join(dir, "shard")
	args := []string{"--format=gnu", "--sort=name", "-C", filepath.Join(dir, "src"), "-cf", out, "."}
	if gzip {
		args = []string{"--format=gnu", "--sort=name", "-C", filepath.Join(dir, "src"), "-czf", out, "."}
	}
	if b, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// GNU tar names members "./dir/key.ext"; webdataset keys keep the "./".
	for _, k := range keys {
		want["./"+k] = want[k]
		delete(want, k)
	}
	return b
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testDataset makes 8 shards: ustar, pax and GNU tars from archive/tar,
// a GNU tar and a gzipped GNU tar from the tar command.
func testDataset(t testing.TB) ([]shardFile, sampleData) {
	r := rand.New(rand.NewPCG(3, 4))
	want := sampleData{}
	var shards []shardFile
	formats := []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU}
	n := 0
	keys := func(count int, nested bool) []string {
		var ks []string
		for range count {
			k := fmt.Sprintf("%06d", n)
			if nested {
				k = fmt.Sprintf("part%d/%s", n%3, k)
			}
			ks = append(ks, k)
			n++
		}
		return ks
	}
	for i := range 6 {
		shards = append(shards, shardFile{fmt.Sprintf("train/shard-%06d.tar", i), goTarShard(t, formats[i%3], keys(10+i, i%2 == 1), want, r)})
	}
	shards = append(shards, shardFile{"train/shard-000006.tar", gnuTarShard(t, keys(12, true), want, r, false)})
	shards = append(shards, shardFile{"train/shard-000007.tar.gz", gnuTarShard(t, keys(9, false), want, r, true)})
	return shards, want
}
