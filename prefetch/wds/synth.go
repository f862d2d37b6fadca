package wds

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Synthetic describes a synthetic WebDataset for demos and benchmarks.
type Synthetic struct {
	Shards     int    // number of shards, named train-000000.tar, …
	PerShard   int    // samples per shard
	SampleSize int    // bytes of each sample's "img.bin" field
	Seed       uint64 // seed of the random bytes and labels
}

// Write writes the dataset's shards into dir. Each sample has an
// "img.bin" of random bytes, a "cls" label and a "json" record.
func (s Synthetic) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(s.Seed, 0x5eed))
	img := make([]byte, s.SampleSize)
	for sh := range s.Shards {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("train-%06d.tar", sh)))
		if err != nil {
			return err
		}
		tw := tar.NewWriter(f)
		for i := range s.PerShard {
			key := fmt.Sprintf("%06d", sh*s.PerShard+i)
			for j := 0; j+8 <= len(img); j += 8 {
				v := r.Uint64()
				for k := range 8 {
					img[j+k] = byte(v >> (8 * k))
				}
			}
			label := r.IntN(10)
			meta, err := json.Marshal(map[string]any{"key": key, "label": label})
			if err != nil {
				return err
			}
			for _, m := range []struct {
				ext  string
				data []byte
			}{{"img.bin", img}, {"cls", fmt.Append(nil, label)}, {"json", meta}} {
				if err := tw.WriteHeader(&tar.Header{Name: key + "." + m.ext, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}); err != nil {
					return err
				}
				if _, err := tw.Write(m.data); err != nil {
					return err
				}
			}
		}
		if err := tw.Close(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
