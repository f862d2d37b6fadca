package wds

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonIndex is an independent reference: Python's tarfile (stream mode, as
// webdataset opens shards) with webdataset's naming rules written out.
// It prints, for each tar named on the command line, its samples (names in
// hex, as bytes) or the error webdataset would raise.
const pythonIndex = `
import json, re, sys, tarfile

def split(name):  # webdataset's base_plus_ext
    m = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", name)
    return (m.group(1), m.group(2)) if m else (None, None)

def meta(name):  # tar_file_iterator's two metadata tests
    top = "/" not in name and name.startswith("__") and name.endswith("__")
    return top or re.match(r"__[^/]*__($|/)", name) is not None

def hexname(s):
    return s.encode("utf-8", "surrogateescape").hex()

def index(path):
    samples = []
    with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tf:
        for ti in tf:
            if not ti.isreg() or meta(ti.name):
                continue
            key, field = split(ti.name)
            if key is None:
                continue
            field = field.lower()
            if not samples or samples[-1][0] != key:
                samples.append((key, []))
            fields = samples[-1][1]
            if field in ("__key__", "__url__") or any(n == field for n, _, _ in fields):
                raise ValueError("duplicate file name " + ti.name)
            fields.append((field, ti.offset_data, ti.size))
    return [{"key": hexname(k), "fields": [{"name": hexname(n), "offset": o, "size": s} for n, o, s in fs]}
            for k, fs in samples]

out = []
for path in sys.argv[1:]:
    try:
        out.append({"samples": index(path)})
    except Exception as e:
        out.append({"error": repr(e)})
json.dump(out, sys.stdout)
`

// TestMatchesPython indexes random tars (random names, types, sizes and
// formats) and GNU tar's archives, and compares every index with the
// reference's. It skips when python3 is not installed.
func TestMatchesPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed; the reference index cannot run")
	}
	dir := t.TempDir()
	var tars [][]byte
	rng := rand.New(rand.NewPCG(7, 7))
	for len(tars) < 600 {
		if data, ok := randomTar(rng); ok {
			tars = append(tars, data)
		}
	}
	tree, _ := shardTree(t)
	for _, format := range []string{"gnu", "posix", "ustar"} {
		tars = append(tars, runTar(t, tree, "--format="+format, "--sort=name", "-c", "data"))
	}
	args := []string{"-c", pythonIndex}
	for i, data := range tars {
		p := filepath.Join(dir, fmt.Sprintf("%03d.tar", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(python, args...).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var ref []struct {
		Samples []Sample
		Error   string
	}
	if err := json.Unmarshal(out, &ref); err != nil || len(ref) != len(tars) {
		t.Fatalf("reading python's output (%d of %d): %v", len(ref), len(tars), err)
	}
	compared, raised := 0, 0
	for i, data := range tars {
		got, err := IndexBytes(data)
		if ref[i].Error != "" {
			raised++
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("tar %d: python raised %s; got %v, want ErrCorrupt", i, ref[i].Error, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("tar %d: %v; python read %s", i, err, describe(ref[i].Samples))
			continue
		}
		for j := range got { // the reference's names are hex
			got[j].Key = hex.EncodeToString([]byte(got[j].Key))
			for k := range got[j].Fields {
				got[j].Fields[k].Name = hex.EncodeToString([]byte(got[j].Fields[k].Name))
			}
		}
		if describe(got) != describe(ref[i].Samples) {
			t.Errorf("tar %d:\n got  %s\n want %s", i, describe(got), describe(ref[i].Samples))
		}
		compared += len(got)
	}
	t.Logf("%d tars: %d raised in python, %d samples compared", len(tars), raised, compared)
	if compared < 1000 || raised < 20 {
		t.Errorf("the random tars are too dull: %d samples compared, %d raised", compared, raised)
	}
}

// randomTar writes a tar with random members; ok is false if archive/tar
// cannot encode one of them in the chosen format.
func randomTar(rng *rand.Rand) ([]byte, bool) {
	parts := []string{"a", "b", "B", "J", ".", ".", "/", "_", "__", "é", "Σ", "0", "\n"}
	format := allFormats[rng.IntN(len(allFormats))]
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	exts := []string{"jpg", "JPG", "seg.png", "cls", "ΑΣ", "", "tar.gz", "Json"}
	dirs := []string{"", "d/", "d.x/", "Σ/", "__m__/", "a/b/"}
	key := "k"
	for range 1 + rng.IntN(16) {
		var name strings.Builder
		switch rng.IntN(4) {
		case 0: // anything
			for range rng.IntN(8) {
				name.WriteString(parts[rng.IntN(len(parts))])
			}
		case 1: // the same key as before, a field that may repeat
			name.WriteString(key + "." + exts[rng.IntN(len(exts))])
		default: // a new key
			key = dirs[rng.IntN(len(dirs))]
			for range 1 + rng.IntN(3) {
				if p := parts[rng.IntN(len(parts))]; p != "." && p != "/" {
					key += p
				}
			}
			name.WriteString(key + "." + exts[rng.IntN(len(exts))])
		}
		hdr := &tar.Header{Name: name.String(), Mode: 0o644, ModTime: time.Unix(1, 0), Format: format}
		switch rng.IntN(10) {
		case 0:
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case 1:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, key
		case 2:
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, key
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(rng.IntN(1100))
		}
		if hdr.Name == "" || tw.WriteHeader(hdr) != nil {
			return nil, false
		}
		if _, err := tw.Write(make([]byte, hdr.Size)); err != nil {
			return nil, false
		}
	}
	if tw.Close() != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
