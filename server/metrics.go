package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics counts what the Loader service delivered.
type serverMetrics struct {
	samples atomic.Uint64
	bytes   atomic.Uint64
}

// collector exports the server's Stats snapshot to Prometheus, read at
// scrape time so counters live in one place.
type collector struct{ s *Server }

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("stoker_"+name, help, nil, nil)
}

// boolValue is a flag's metric value: 1 or 0.
func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

var (
	descMemoryHits  = desc("cache_memory_hits_total", "Shard reads served from the memory tier.")
	descDiskHits    = desc("cache_disk_hits_total", "Shard reads served from the disk tier.")
	descMisses      = desc("cache_misses_total", "Shard reads that missed both tiers.")
	descMemoryBytes = desc("cache_memory_bytes", "Bytes held in the memory tier.")
	descDiskBytes   = desc("cache_disk_bytes", "Bytes held in the disk tier.")
	descEvictions   = desc("cache_evictions_total", "Entries evicted from either tier.")
	descRequests    = desc("storage_requests_total", "Requests made to storage (S3 or files).")
	descStorage     = desc("storage_bytes_total", "Bytes read from storage.")
	descStall       = desc("stall_seconds_total", "Time streams waited for shard bytes.")
	descSamples     = desc("samples_served_total", "Samples sent to trainers.")
	descBytes       = desc("bytes_served_total", "Sample bytes sent to trainers.")
	descStreams     = desc("active_streams", "Open batch streams.")
	descRangeReqs   = desc("storage_range_requests_total", "Reads of single samples' byte ranges from storage (windows larger than the cache); included in storage_requests_total.")
	descRangeBytes  = desc("storage_range_bytes_total", "Bytes of sample range reads from storage; included in storage_bytes_total.")
	descDiskRange   = desc("cache_disk_range_hits_total", "Samples read from the disk tier without reading their whole shard.")
	descKeep        = desc("cache_keep_fraction", "Share of each active dataset this node keeps across epochs (1: the datasets fit the cache).")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMemoryHits, descDiskHits, descMisses, descMemoryBytes, descDiskBytes, descEvictions,
		descRequests, descStorage, descStall, descSamples, descBytes, descStreams, descRangeReqs, descRangeBytes, descDiskRange, descKeep} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter(descMemoryHits, float64(st.MemoryHits))
	counter(descDiskHits, float64(st.DiskHits))
	counter(descMisses, float64(st.Misses))
	gauge(descMemoryBytes, float64(st.MemoryBytes))
	gauge(descDiskBytes, float64(st.DiskBytes))
	counter(descEvictions, float64(st.Evictions))
	counter(descRequests, float64(st.StorageRequests))
	counter(descStorage, float64(st.StorageBytes))
	counter(descStall, float64(st.StallNanos)/1e9)
	counter(descSamples, float64(st.SamplesServed))
	counter(descBytes, float64(st.BytesServed))
	gauge(descStreams, float64(st.ActiveStreams))
	counter(descRangeReqs, float64(st.StorageRangeRequests))
	counter(descRangeBytes, float64(st.StorageRangeBytes))
	counter(descDiskRange, float64(st.DiskRangeHits))
	gauge(descKeep, c.s.prefetcher.KeepFraction())
}
