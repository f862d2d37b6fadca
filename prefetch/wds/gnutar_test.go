package wds

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// gnuTar returns the path of GNU tar, failing the test if there is none:
// these tests are about the archives real shard writers make.
func gnuTar(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tar")
	if err != nil {
		t.Fatalf("GNU tar is needed for this test: %v", err)
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("GNU tar")) {
		t.Fatalf("%s is not GNU tar: %v: %.80s", path, err, out)
	}
	return path
}

// runTar runs GNU tar in dir and returns the archive it wrote to out.
func runTar(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shard")
	cmd := exec.Command(gnuTar(t), append([]string{"-f", out}, args...)...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar %v: %v\n%s", args, err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// shardTree writes a folder of sample files and returns it with the index
// that "tar --sort=name -c data" of it must give.
func shardTree(t *testing.T) (string, []wantSample) {
	dir := t.TempDir()
	long := "data/sub/" + strings.Repeat("l", 90) // a 110-byte path: ustar prefix, GNU 'L', pax path
	files := []struct{ path, body string }{
		{"data/000001.cls", "1"},
		{"data/000001.jpg", body(11, 1500)},
		{"data/000001.seg.PNG", body(12, 512)},
		{"data/000002.cls", "2"},
		{"data/000002.jpg", body(13, 4096)},
		{"data/README", "no dot: skipped"},
		{"data/empty.txt", ""},
		{long + "/000003.txt", body(14, 100)},
		{"data/écrits/000004.Txt", "non-ASCII path"},
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink and a hard link are skipped, as webdataset skips them.
	if err := os.Symlink("000001.jpg", filepath.Join(dir, "data/link.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "data/000002.jpg"), filepath.Join(dir, "data/zz_hard.jpg")); err != nil {
		t.Fatal(err)
	}
	body := func(i int) string { return files[i].body }
	return dir, []wantSample{
		{"data/000001", []wantField{{"cls", body(0)}, {"jpg", body(1)}, {"seg.png", body(2)}}},
		{"data/000002", []wantField{{"cls", body(3)}, {"jpg", body(4)}}},
		{"data/empty", []wantField{{"txt", ""}}},
		{long + "/000003", []wantField{{"txt", body(7)}}},
		{"data/écrits/000004", []wantField{{"txt", body(8)}}},
	}
}

// TestGNUTar indexes archives GNU tar writes in its three formats, plain
// and gzipped, with directories, links, long and non-ASCII names.
func TestGNUTar(t *testing.T) {
	dir, want := shardTree(t)
	for _, format := range []string{"gnu", "posix", "ustar"} {
		for _, gz := range []bool{false, true} {
			name := format
			args := []string{"--format=" + format, "--sort=name", "-c", "data"}
			if gz {
				name += "+gzip"
				args = append(args, "-z")
			}
			t.Run(name, func(t *testing.T) {
				shard := runTar(t, dir, args...)
				if isGz := bytes.HasPrefix(shard, gzipMagic); isGz != gz {
					t.Fatalf("gzip magic %v, want %v", isGz, gz)
				}
				data, err := Decompress(shard)
				if err != nil {
					t.Fatal(err)
				}
				got, err := IndexBytes(data)
				if err != nil {
					t.Fatal(err)
				}
				checkSamples(t, data, got, want)

				// The streaming path gives the same index.
				r, err := NewReader(bytes.NewReader(shard))
				if err != nil {
					t.Fatal(err)
				}
				streamed, err := Index(r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(streamed, got) {
					t.Fatalf("streamed index differs:\n%s\n%s", describe(streamed), describe(got))
				}
			})
		}
	}
}

// TestGNUTarSparse checks that sparse members, in GNU tar's old format and
// its pax format, are refused as unsupported, naming the member.
func TestGNUTarSparse(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "holes.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("data after a hole"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("plain"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			data := runTar(t, dir, "--format="+format, "--sparse", "-c", "a.txt", "holes.bin")
			_, err := IndexBytes(data)
			_ = wantErr(t, err, ErrUnsupported, "holes.bin", -1)
		})
	}
}
