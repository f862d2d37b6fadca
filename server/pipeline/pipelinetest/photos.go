// Package pipelinetest writes WebDataset shards of the pipeline package's
// test photos, for the tests of the packages that serve pipelines. It
// imports nothing of Stoker.
package pipelinetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Photos are the test photos used in turn when WritePhotoShards is given
// none: JPEGs of several kinds and a PNG.
var Photos = []string{"photo.jpg", "progressive.jpg", "444.jpg", "gray.jpg", "photo.png"}

// WritePhotoShards writes shards train-000.tar… into dir, each of per
// samples: sample n (key "%05d") has the photo files[n % len(files)]
// (server/pipeline/testdata; Photos when files is nil) as its jpg or png
// field and the label n % 10 as its cls field. bad maps a key to the
// bytes its image gets instead (nil: no image field).
func WritePhotoShards(tb testing.TB, dir string, shards, per int, files []string, bad map[string][]byte) {
	tb.Helper()
	if files == nil {
		files = Photos
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("pipelinetest: cannot find its own source file")
	}
	testdata := filepath.Join(filepath.Dir(self), "..", "testdata")
	imgs := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(testdata, f))
		if err != nil {
			tb.Fatal(err)
		}
		imgs[i] = b
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for s := range shards {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		put := func(name string, data []byte) {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
				tb.Fatal(err)
			}
			if _, err := tw.Write(data); err != nil {
				tb.Fatal(err)
			}
		}
		for i := range per {
			n := s*per + i
			key := fmt.Sprintf("%05d", n)
			file := files[n%len(files)]
			ext, data := strings.TrimPrefix(filepath.Ext(file), "."), imgs[n%len(files)]
			if b, ok := bad[key]; ok {
				data = b
			}
			if data != nil {
				put(key+"."+ext, data)
			}
			put(key+".cls", fmt.Appendf(nil, "%d", n%10))
		}
		if err := tw.Close(); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("train-%03d.tar", s)), buf.Bytes(), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
