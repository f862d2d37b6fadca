package server

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// timedSource times every ReadAt of a Source (one GET with its retries and
// resumes, for S3) into stoker_storage_read_seconds and its size into
// stoker_storage_read_bytes. Stat and List pass through. It passes on the
// optional methods the prefetch package asks of a Source (Metrics,
// Allowed, Link).
type timedSource struct {
	storage.Source
	seconds prometheus.ObserverVec // by result, curried with the scheme
	bytes   prometheus.Observer
}

var _ storage.Source = (*timedSource)(nil)

func (t *timedSource) ReadAt(ctx context.Context, obj storage.Object, p []byte, off int64) error {
	start := time.Now()
	err := t.Source.ReadAt(ctx, obj, p, off)
	t.seconds.WithLabelValues(result(err)).Observe(time.Since(start).Seconds())
	t.bytes.Observe(float64(len(p)))
	return err
}

// Metrics passes on the wrapped Source's counters.
func (t *timedSource) Metrics() storage.Metrics {
	if m, ok := t.Source.(interface{ Metrics() storage.Metrics }); ok {
		return m.Metrics()
	}
	return storage.Metrics{}
}

// Allowed passes on the wrapped Source's allow-list.
func (t *timedSource) Allowed(url string) error {
	if a, ok := t.Source.(interface{ Allowed(string) error }); ok {
		return a.Allowed(url)
	}
	return nil
}

// Link passes on the wrapped Source's estimate of its connections.
func (t *timedSource) Link() (storage.LinkEstimate, bool) { return storage.LinkOf(t.Source) }

// timeSources returns sources with every Source timed.
func (s *Server) timeSources(sources *storage.Sources) *storage.Sources {
	m := map[string]storage.Source{}
	for _, scheme := range sources.Schemes() {
		src, err := sources.For(scheme + "://")
		if err != nil {
			return sources // cannot happen: the scheme is its own
		}
		m[scheme] = &timedSource{Source: src,
			seconds: s.hist.storage.MustCurryWith(prometheus.Labels{"scheme": scheme}),
			bytes:   s.hist.storageBytes.WithLabelValues(scheme)}
	}
	return storage.NewSources(m)
}

// timedRemote times the reads from owner nodes into
// stoker_peer_read_seconds. A read the owner sends back (ErrLocal: this
// node reads it itself) is no peer read and is not observed.
type timedRemote struct {
	r       prefetch.RangeRemote
	seconds *prometheus.HistogramVec
}

var _ prefetch.RangeRemote = (*timedRemote)(nil)

func (t *timedRemote) Fetch(ctx context.Context, o storage.Object) ([]byte, error) {
	start := time.Now()
	b, err := t.r.Fetch(ctx, o)
	t.observe("shard", start, err)
	return b, err
}

func (t *timedRemote) FetchRange(ctx context.Context, o storage.Object, off, n int64) ([]byte, error) {
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
