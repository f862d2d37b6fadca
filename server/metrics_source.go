package server

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoker-data/stoker/prefetch"
)

// timedSource times every ReadAt of a Source (one GET with its retries and
// resumes, for S3) into stoker_storage_read_seconds and its size into
// stoker_storage_read_bytes. Stat and List pass through. It passes on the
// optional methods the prefetch package asks of a Source (Metrics,
// Allowed, Link).
type timedSource struct {
	prefetch.Source
	seconds prometheus.ObserverVec // by result, curried with the scheme
	bytes   prometheus.Observer
}

var _ prefetch.Source = (*timedSource)(nil)

func (t *timedSource) ReadAt(ctx context.Context, obj prefetch.Object, p []byte, off int64) error {
	start := time.Now()
	err := t.Source.ReadAt(ctx, obj, p, off)
	t.seconds.WithLabelValues(result(err)).Observe(time.Since(start).Seconds())
	t.bytes.Observe(float64(len(p)))
	return err
}

// Metrics passes on the wrapped Source's counters.
func (t *timedSource) Metrics() prefetch.SourceMetrics {
	if m, ok := t.Source.(interface{ Metrics() prefetch.SourceMetrics }); ok {
		return m.Metrics()
	}
	return prefetch.SourceMetrics{}
}

// Allowed passes on the wrapped Source's allow-list.
func (t *timedSource) Allowed(url string) error {
	if a, ok := t.Source.(interface{ Allowed(string) error }); ok {
		return a.Allowed(url)
	}
	return nil
}

// Link passes on the wrapped Source's estimate of its connections.
func (t *timedSource) Link() (prefetch.LinkEstimate, bool) { return prefetch.LinkOf(t.Source) }

// timeSources returns sources with every Source timed.
func (s *Server) timeSources(sources *prefetch.Sources) *prefetch.Sources {
	m := map[string]prefetch.Source{}
	for _, scheme := range sources.Schemes() {
		src, err := sources.For(scheme + "://")
		if err != nil {
			return sources // cannot happen: the scheme is its own
		}
		m[scheme] = &timedSource{Source: src,
			seconds: s.hist.storage.MustCurryWith(prometheus.Labels{"scheme": scheme}),
			bytes:   s.hist.storageBytes.WithLabelValues(scheme)}
	}
	return prefetch.NewSources(m)
}

// timedRemote times the reads from owner nodes into
// stoker_peer_read_seconds. A read the owner sends back (ErrLocal: this
// node reads it itself) is no peer read and is not observed.
type timedRemote struct {
	r       prefetch.RangeRemote
	seconds *prometheus.HistogramVec
}

var _ prefetch.RangeRemote = (*timedRemote)(nil)

func (t *timedRemote) Fetch(ctx context.Context, o prefetch.Object) ([]byte, error) {
	start := time.Now()
	b, err := t.r.Fetch(ctx, o)
	t.observe("shard", start, err)
	return b, err
}

func (t *timedRemote) FetchRange(ctx context.Context, o prefetch.Object, off, n int64) ([]byte, error) {
	start := time.Now()
	b, err := t.r.FetchRange(ctx, o, off, n)
	t.observe("range", start, err)
	return b, err
}

func (t *timedRemote) observe(kind string, start time.Time, err error) {
	if errors.Is(err, prefetch.ErrLocal) {
		return
	}
	t.seconds.WithLabelValues(kind, result(err)).Observe(time.Since(start).Seconds())
}
