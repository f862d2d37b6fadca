package cache_test

import (
	"fmt"
	"log"
	"os"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
)

func ExampleCache() {
	dir, err := os.MkdirTemp("", "stoker-cache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := cache.DefaultConfig()
	cfg.MemoryBytes, cfg.DiskBytes, cfg.Dir = 64<<20, 1<<30, dir

	c, err := cache.Open(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	key := storage.Key{Object: "s3://bucket/train-000000.tar", ETag: `"9b2cf535f27731c974343645a3985328"`}
	if err := c.Put(key, []byte("shard bytes")); err != nil {
		log.Fatal(err)
	}
	_, tier, ok := c.Get(key)
	fmt.Println(tier, ok)
	c.Close()

	// A restarted server finds the entry on disk.
	c, err = cache.Open(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	data, tier, ok := c.Get(key)
	fmt.Println(string(data), tier, ok)
	fmt.Println(c.Contains(key))
	// Output:
	// memory true
	// shard bytes disk true
	// memory
}
