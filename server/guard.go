package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// securityMetrics counts what the guards refused and caught.
type securityMetrics struct {
	authFailures *prometheus.CounterVec // by api: grpc, http
	rejected     *prometheus.CounterVec // by limit
	panics       prometheus.Counter
}

// setupGuards makes the limiter and the guards' metrics, and registers
// them; call it in New before the gRPC server is made.
func (s *Server) setupGuards() {
	m := &securityMetrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoker_auth_failures_total",
			Help: "Calls and requests refused for a missing or wrong bearer token, by API (grpc, http)."}, []string{"api"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoker_limit_rejections_total",
			Help: "Streams and shm regions refused at a limit, by limit (streams, streams_per_conn, shm_bytes, shm_bytes_per_conn)."}, []string{"limit"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "stoker_handler_panics_total",
			Help: "Panics recovered in gRPC and HTTP handlers (each answered Internal and logged with its stack)."}),
	}
	m.authFailures.WithLabelValues("grpc")
	m.authFailures.WithLabelValues("http")
	s.security = m
	s.sizes = newDatasetSizes()
	s.trim = newTrimmer()
	s.limits = newLimiter(s.cfg.Limits, func(limit string) { m.rejected.WithLabelValues(limit).Inc() }, s.trim.want)
	s.registry.MustRegister(m.authFailures, m.rejected, m.panics, &sizeCollector{s: s})
}

// guardOptions are the gRPC server options of the guards: recover (the
// outermost, so it catches the others' panics too), then the failure log
// (reqlog.go), then auth, then the
// stream limits (a call without a token holds nothing); and the stats
// handler that tells connections apart for the per-connection limits.
func (s *Server) guardOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.logUnary, s.authUnary),
		grpc.ChainStreamInterceptor(s.recoverStream, s.logStream, s.authStream, s.limitStream),
		grpc.StatsHandler(connTagger{}),
	}
}
