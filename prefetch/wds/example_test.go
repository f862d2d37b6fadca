package wds_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"log"

	"github.com/stoker-data/stoker/prefetch/wds"
)

func ExampleIndexBytes() {
	// A shard of two samples, as webdataset's TarWriter would write it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range []struct{ name, body string }{
		{"train/000001.jpg", "<jpeg 1>"},
		{"train/000001.cls", "3"},
		{"train/000002.JPG", "<jpeg 2>"},
		{"train/000002.cls", "7"},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body))}); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write([]byte(m.body)); err != nil {
			log.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}

	shard, err := wds.Decompress(buf.Bytes()) // not gzipped: returned as is
	if err != nil {
		log.Fatal(err)
	}
	samples, err := wds.IndexBytes(shard)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range samples {
		for _, f := range s.Fields {
			data, err := wds.FieldData(shard, f)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s %-3s at %4d: %s\n", s.Key, f.Name, f.Offset, data)
		}
	}
	// Output:
	// train/000001 jpg at  512: <jpeg 1>
	// train/000001 cls at 1536: 3
	// train/000002 jpg at 2560: <jpeg 2>
	// train/000002 cls at 3584: 7
}
