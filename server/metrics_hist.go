package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Bucket layouts. Latencies run from 0.1 ms to 15 s (×2.5 a bucket): a
// cached batch takes well under a millisecond, an S3 GET tens of
// milliseconds, a stalled one seconds. A stream's stall runs from 1 ms to
// about 27 minutes (×3). Read sizes run from 4 KiB (a sample range) to
// 16 GiB (×4).
var (
	latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 14)
	stallBuckets   = prometheus.ExponentialBuckets(0.001, 3, 14)
	sizeBuckets    = prometheus.ExponentialBuckets(4096, 4, 12)
)

// DefaultMetricsDatasets is how many datasets get a metric label of their
// own at once (Config.MetricsDatasets); the others are "other".
const DefaultMetricsDatasets = 10

// datasetIdle is how long a dataset keeps its label after its last stream
// closed: a job's next epoch, or its restart, finds it again.
const datasetIdle = 15 * time.Minute

// histograms are the distributions stokerd exports (latencies, sizes,
// stalls) and the per-dataset counters. Every dataset label comes from
// datasets, so the series stay bounded however many datasets a node sees.
type histograms struct {
	batch        *prometheus.HistogramVec // step built and sent, by dataset
	stall        *prometheus.HistogramVec // a closed stream's total stall, by dataset
	samples      *prometheus.CounterVec   // by dataset
	bytes        *prometheus.CounterVec   // by dataset
	streams      *prometheus.CounterVec   // streams opened, by dataset
	storage      *prometheus.HistogramVec // one storage read, by scheme and result
	storageBytes *prometheus.HistogramVec // bytes of one storage read, by scheme
	peer         *prometheus.HistogramVec // one read from an owner node, by kind and result
	failed       *prometheus.CounterVec   // failed requests, by api, method and code
	datasets     *datasetLabels
}

// setupHistograms makes and registers the histograms, the per-dataset
// counters and Go's runtime, process and build collectors.
func (s *Server) setupHistograms() {
	h := &histograms{
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stoker_batch_latency_seconds",
			Help:    "Time from the start of a step (a rank's batch) to its last message handed to gRPC or shared memory, by dataset.",
			Buckets: latencyBuckets}, []string{"dataset"}),
		stall: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stoker_stream_stall_seconds",
			Help:    "Total time one batch stream waited for shard bytes, observed when the stream closes, by dataset.",
			Buckets: stallBuckets}, []string{"dataset"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoker_dataset_samples_served_total",
			Help: "Samples (rows of columnar datasets) sent to trainers, by dataset."}, []string{"dataset"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoker_dataset_bytes_served_total",
			Help: "Sample bytes sent to trainers (WebDataset fields; columnar streams count none), by dataset."}, []string{"dataset"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoker_streams_opened_total",
			Help: "Batch streams opened, by dataset."}, []string{"dataset"}),
		storage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stoker_storage_read_seconds",
			Help:    "Time of one read from storage (an S3 GET of a shard or a byte range, with its retries and resumes; or a file read), by scheme and result (ok, error).",
			Buckets: latencyBuckets}, []string{"scheme", "result"}),
		storageBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stoker_storage_read_bytes",
			Help:    "Bytes asked of one read from storage, by scheme.",
			Buckets: sizeBuckets}, []string{"scheme"}),
		peer: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stoker_peer_read_seconds",
			Help:    "Time of one read of a shard (kind shard) or of a sample range (kind range) from its owner node, by result (ok, error: then read from storage).",
			Buckets: latencyBuckets}, []string{"kind", "result"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoker_requests_failed_total",
			Help: "Failed gRPC calls and HTTP requests, by api (grpc, http), method (the gRPC method or the HTTP route) and code (the gRPC code or HTTP status)."},
			[]string{"api", "method", "code"}),
	}
	max := s.cfg.MetricsDatasets
	if max <= 0 {
		max = DefaultMetricsDatasets
	}
	h.datasets = newDatasetLabels(max, datasetIdle, h.forget)
	for _, scheme := range s.sources.Schemes() {
		for _, result := range []string{"ok", "error"} {
			h.storage.WithLabelValues(scheme, result)
		}
		h.storageBytes.WithLabelValues(scheme)
	}
	for _, kind := range []string{"shard", "range"} {
		for _, result := range []string{"ok", "error"} {
			h.peer.WithLabelValues(kind, result)
		}
	}
	s.hist = h
	s.registry.MustRegister(h.batch, h.stall, h.samples, h.bytes, h.streams, h.storage, h.storageBytes, h.peer, h.failed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector())
}

// forget drops the series of a dataset label that was given to another.
func (h *histograms) forget(label string) {
	for _, v := range []*prometheus.MetricVec{h.batch.MetricVec, h.stall.MetricVec, h.samples.MetricVec, h.bytes.MetricVec, h.streams.MetricVec} {
		v.DeleteLabelValues(label)
	}
}

// result is the result label of an error.
func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
