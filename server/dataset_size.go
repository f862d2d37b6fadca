package server

import (
	"context"
	"math"

	"github.com/dustin/go-humanize"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/shuffle"
)

// farLarger is how many times larger than the cache a dataset is before
// opening it logs a warning: every epoch then reads nearly all of it from
// storage again, and a shuffle window must fit the cache to be read once.
const farLarger = 10

// datasetSizes remembers the cache-to-dataset ratio of recently opened
// datasets, warning once per dataset that is far larger than the cache.
type datasetSizes struct {
	ratios *lru.Cache[string, float64] // cache capacity / dataset bytes, by URL; safe for concurrent use
}

func newDatasetSizes() *datasetSizes {
	c, _ := lru.New[string, float64](64)
	return &datasetSizes{ratios: c}
}

// open opens the dataset at url for a request, after checking the
// server may read it (a dataset opened before, or its stored manifest,
// would otherwise answer without storage being asked), and warns of one
// far larger than the cache. Errors are gRPC statuses.
func (s *Server) open(ctx context.Context, url string, format shuffle.Format) (*dataset.Dataset, error) {
	if err := s.sources.Allowed(url); err != nil {
		return nil, toStatus(err)
	}
	ds, err := s.catalog.Open(ctx, url, format)
	if err != nil {
		return nil, toStatus(err)
	}
	s.observeSize(ds)
	return ds, nil
}

// observeSize records ds's ratio and logs once per URL when the cache it
// is read through (this node's, or the cluster's) is far smaller.
func (s *Server) observeSize(ds *dataset.Dataset) {
	var bytes int64
	seen := map[string]bool{} // a columnar dataset's units share objects
	for _, sh := range ds.Manifest.Shards {
		if !seen[sh.Object] {
			seen[sh.Object] = true
			bytes += sh.Size
		}
	}
	if bytes <= 0 {
		return
	}
	capacity, where := s.cacheCapacity()
	ratio := float64(capacity) / float64(bytes)
	url := ds.Manifest.URL
	if _, seenBefore, _ := s.sizes.ratios.PeekOrAdd(url, ratio); seenBefore {
		s.sizes.ratios.Add(url, ratio)
		return
	}
	if ratio < 1.0/farLarger {
		s.log.Warn("the cache is far smaller than this dataset: every epoch reads nearly all of it from storage again; give the cache more room (--memory-cache, --disk-cache) or more nodes, and keep a shuffle window's shards within it",
			"url", url, "dataset_bytes", humanize.IBytes(uint64(bytes)), "cache_bytes", humanize.IBytes(uint64(capacity)), "cache", where,
			"cache_to_dataset_ratio", ratio)
	}
}

// cacheCapacity is what the datasets are cached in: this node's tiers, or
// the sum of the live members' in a cluster.
func (s *Server) cacheCapacity() (int64, string) {
	own := s.cfg.Cache.MemoryBytes + s.cfg.Cache.DiskBytes
	if s.cfg.Cluster == nil {
		return own, "this node"
	}
	var sum int64
	for _, m := range s.cfg.Cluster.Pool() {
		sum += m.Meta.Capacity
	}
	return max(sum, own), "the cluster"
}

// sizeCollector exports stoker_cache_dataset_ratio: the smallest ratio of
// cache capacity to dataset bytes among the datasets opened recently (NaN
// before the first).
type sizeCollector struct{ s *Server }

var descDatasetRatio = desc("cache_dataset_ratio",
	"Cache capacity (this node's, or the cluster's) over the bytes of a dataset, the smallest among the recently opened datasets; under 0.1 is logged as a warning.")

func (c *sizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descDatasetRatio }

func (c *sizeCollector) Collect(ch chan<- prometheus.Metric) {
	least := math.NaN()
	for _, url := range c.s.sizes.ratios.Keys() {
		if r, ok := c.s.sizes.ratios.Peek(url); ok && !(r >= least) {
			least = r
		}
	}
	ch <- prometheus.MustNewConstMetric(descDatasetRatio, prometheus.GaugeValue, least)
}
