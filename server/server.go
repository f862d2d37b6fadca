// Package server is Stoker's gRPC front: the Loader service trainers call,
// batch assembly from cached shards, metrics and the health endpoint.
// It is the one place errors become gRPC codes.
//
// It wires the parts below it (prefetch, shuffle, gpu, server/cluster,
// server/pipeline, server/status) to the wire format; it never imports the
// clients or the commands (its tests start real clients). What differs on
// the wire by a dataset's format (samples' fields, or Arrow record
// batches) is chosen in one place, wireOf (wire.go); everything else asks
// the dataset's Layout.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/dsindex"
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/cluster"
	"github.com/stoker-data/stoker/server/pipeline"
	"github.com/stoker-data/stoker/server/shm"
	"github.com/stoker-data/stoker/server/status"
)

// Config configures a Server.
type Config struct {
	// Cache sets the memory and disk tiers.
	Cache cache.Config
	// MemoryRegion says where the memory tier lives (see gpu.RegionAuto, the
	// default). A Cache.Memory the caller set is used as it is.
	MemoryRegion gpu.MemoryRegion
	// Shards bounds fetches from storage.
	Shards prefetch.ShardsConfig
	// Prefetch sets how far ahead of each stream shards are fetched.
	Prefetch prefetch.PrefetchConfig
	// CatalogDir holds stored manifests and shard indexes; empty means
	// "catalog" under the cache folder.
	CatalogDir string
	// MaxPartBytes is the most sample bytes in one stream message; a larger
	// batch is sent as several parts of the same step.
	MaxPartBytes int
	// MaxMessageBytes is the gRPC send limit; it must exceed MaxPartBytes
	// plus the largest single sample.
	MaxMessageBytes int
	// WindowBytes is gRPC's flow-control window, per stream and per
	// connection (set together, never one alone).
	WindowBytes int32
	// Cluster is this node's membership; nil runs a single node that owns
	// every shard. The caller starts it and closes it after Shutdown.
	Cluster *cluster.Node
	// NextEpochBytes caps what the owners prefetch of epoch e+1 while
	// epoch e streams (each only into free cache room); negative turns
	// it off.
	NextEpochBytes int64
	// Shm sets shared-memory delivery to local clients.
	Shm ShmConfig
	// Host is what the caller probed of this host (gpu.Probe); nil probes
	// it in New.
	Host *gpu.Host
	// TLS, when set, serves gRPC on TCP with TLS (unix sockets stay
	// plaintext: they are local), verifying clients as it says.
	// tlsfiles.Files.ServerConfig makes one that follows rotated files.
	TLS *tls.Config
	// Limits bounds the streams and shm regions clients hold at once.
	Limits Limits
	// Pipeline sets the workers that decode and augment the samples of
	// streams that ask for a pipeline (ready batches).
	Pipeline pipeline.Config
	// Auth, when set, requires a bearer token it accepts on every gRPC
	// call and HTTP request but /healthz (see guardHTTP); nil: no auth.
	Auth TokenSource
	// MetricsWithoutAuth serves /metrics without a token when Auth is set.
	MetricsWithoutAuth bool
	// Tracer, when set, traces every batch stream (see trace.go); nil:
	// no tracing.
	Tracer trace.Tracer
	// Profiling serves Go's profiles (net/http/pprof) under /debug/pprof/
	// on the HTTP port, behind the same auth as the other paths.
	Profiling bool
	// MetricsDatasets is how many datasets get a label of their own in the
	// per-dataset metrics at once (the others are "other"); 0 means
	// DefaultMetricsDatasets.
	MetricsDatasets int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Cache:           cache.DefaultConfig(),
		MemoryRegion:    gpu.RegionAuto,
		Shards:          prefetch.DefaultShardsConfig(),
		Prefetch:        prefetch.DefaultPrefetchConfig(),
		MaxPartBytes:    8 << 20,   // 8 MiB: big enough to amortise per-message cost
		MaxMessageBytes: 512 << 20, // 512 MiB: one huge sample still fits
		WindowBytes:     8 << 20,   // 8 MiB: keeps a 1 GB/s loopback stream busy
		NextEpochBytes:  1 << 30,   // 1 GiB: the first minutes of the next epoch, not all of it
		Shm:             DefaultShmConfig(),
		Pipeline:        pipeline.DefaultConfig(),
		Limits:          DefaultLimits(),
	}
}

// Server owns the cache, the catalog and the gRPC services. Create it with
// New, serve with Serve, and stop with Shutdown.
type Server struct {
	cfg        Config
	log        *slog.Logger
	sources    *storage.Sources
	cache      *cache.Cache
	shards     *prefetch.Shards
	catalog    *dataset.Catalog
	prefetcher *prefetch.Prefetcher
	grpc       *grpc.Server
	plans      *planCache
	decoded    *decodedCache // columnar units decoded, shared by streams
	metrics    *serverMetrics
	registry   *prometheus.Registry
	peers      *cluster.Peers // nil on a single node
	hints      *hints
	peerServed atomic.Uint64 // shards served to other nodes
	host       gpu.Host      // probed once at New
	shm        *shm.Registry // shared-memory regions of local streams
	region     memoryRegion  // the memory tier's region
	limits     *limiter      // streams and shm bytes held, by connection
	ready      readyPool     // pipeline workers, started by the first pipeline stream
	trim       *trimmer      // returns a burst's memory once its streams close
	security   *securityMetrics
	sizes      *datasetSizes // datasets far larger than the cache, warned of once
	hist       *histograms   // latencies, sizes, stalls, per-dataset counters
	streams    *streamSet    // open batch streams, for the status page
	started    time.Time

	closeOnce sync.Once
}

// New wires a Server over the given sources.
func New(cfg Config, sources *storage.Sources, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := DefaultConfig()
	if cfg.MaxPartBytes <= 0 {
		cfg.MaxPartBytes = d.MaxPartBytes
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = d.MaxMessageBytes
	}
	if cfg.WindowBytes <= 0 {
		cfg.WindowBytes = d.WindowBytes
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		sources:  sources,
		plans:    newPlanCache(16),
		decoded:  newDecodedCache(decodedCacheBytes),
		metrics:  &serverMetrics{},
		registry: prometheus.NewRegistry(),
		streams:  newStreamSet(),
		started:  time.Now(),
		ready:    readyPool{cfg: cfg.Pipeline},
	}
	s.setupHistograms()
	sources = s.timeSources(sources)
	s.sources = sources
	s.setupHost()
	s.setupGuards()
	s.setupMemoryRegion()
	tiers, err := cache.Open(s.cfg.Cache, log)
	if err != nil {
		s.closeRegionNow()
		return nil, err
	}
	shards := prefetch.NewShards(cfg.Shards, sources, tiers, log)
	dir := cfg.CatalogDir
	if dir == "" {
		dir = cfg.Cache.Dir + "/catalog"
	}
	catalog, err := dataset.NewCatalog(dataset.CatalogConfig{Dir: dir, Fetch: cfg.Shards.Fetch, Indexes: dsindex.NewFinder(sources)}, sources, shards, log)
	if err != nil {
		tiers.Close()
		s.closeRegionNow()
		return nil, err
	}
	s.cache, s.shards, s.catalog = tiers, shards, catalog
	s.prefetcher = prefetch.NewPrefetcher(cfg.Prefetch, shards, tiers)
	s.hints = newHints(s)
	if cfg.Cluster != nil {
		s.peers = cluster.NewPeers(cfg.Cluster)
		shards.SetRemote(&timedRemote{r: s.peers, seconds: s.hist.peer})
		s.prefetcher.SetPlacement(cluster.NewPlacement(cfg.Cluster, s.prefetcher.KeepCapacity))
	}
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.WaitForHandlers(true), // Stop returns after the handlers: none holds a cache Ref then
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.InitialWindowSize(cfg.WindowBytes),
		grpc.InitialConnWindowSize(cfg.WindowBytes),
		s.tlsOption(),
	}, s.guardOptions()...)...)
	stokerv1.RegisterLoaderServer(s.grpc, &loader{s: s})
	stokerv1.RegisterPeerServer(s.grpc, &peer{s: s})
	s.registry.MustRegister(&collector{s: s}, &peerCollector{s: s}, &hostCollector{s: s})
	return s, nil
}

// Serve accepts gRPC connections on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// HTTPHandler serves /metrics (Prometheus), /healthz, POST /v1/prefetch
// (a prefetch hint as JSON), GET /v1/prefetch/{id} (its progress), the
// status page at / and its snapshot at GET /v1/status.
// With Config.Auth every path but /healthz needs a token (see guardHTTP),
// and a POST must be JSON.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("POST /v1/prefetch", s.handlePrefetch)
	mux.HandleFunc("GET /v1/prefetch/{id}", s.handlePrefetchStatus)
	mux.HandleFunc("GET "+status.Path, s.handleStatus)
	page := status.Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /index.html", page)
	mux.Handle("GET /status/", page)
	if s.cfg.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s.recoverHTTP(s.logHTTP(s.guardHTTP(mux)))
}

// Shutdown stops accepting streams, lets open ones finish until ctx ends,
// then cancels them and closes the cache. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
		}
		s.shm.Close() // regions kept for clients' views: their pins go before the cache
		s.hints.close()
		s.ready.close()
		s.trim.stop()
		s.prefetcher.Close()
		s.shards.Wait()
		if s.peers != nil {
			_ = s.peers.Close()
		}
		err = s.cache.Close()
		s.closeMemoryRegion(ctx)
	})
	return err
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() *stokerv1.StatsResponse {
	cm := s.cache.Metrics()
	sm := s.sources.Metrics()
	st := &stokerv1.StatsResponse{
		MemoryHits:      uint64(cm.Memory.Hits),
		DiskHits:        uint64(cm.Disk.Hits),
		Misses:          uint64(cm.Misses),
		MemoryBytes:     uint64(cm.Memory.Bytes),
		MemoryCapacity:  uint64(cm.Memory.Capacity),
		DiskBytes:       uint64(cm.Disk.Bytes),
		DiskCapacity:    uint64(cm.Disk.Capacity),
		Evictions:       uint64(cm.Memory.Evictions + cm.Disk.Evictions),
		StorageRequests: sm.Requests,
		StorageBytes:    sm.Bytes,
		StallNanos:      uint64(s.prefetcher.Stall() / time.Nanosecond),
		SamplesServed:   s.metrics.samples.Load(),
		BytesServed:     s.metrics.bytes.Load(),
		ActiveStreams:   uint64(s.prefetcher.Streams()),
		DiskRangeHits:   s.prefetcher.DiskRangeHits(),
	}
	st.StorageRangeRequests, st.StorageRangeBytes = s.prefetcher.RangeReads()
	cached := uint64(s.cache.DistinctBytes()) // each shard once, in either tier
	st.CachedBytes = &cached
	for _, ds := range s.catalog.Counting() {
		st.Counting = append(st.Counting, &stokerv1.CountingProgress{Url: ds.Manifest.URL,
			ShardsCounted: uint64(ds.ShardsCounted()), ShardsTotal: uint64(len(ds.Manifest.Shards))})
	}
	s.hostStats(st)
	st.Pipeline = s.ready.stats()
	return st
}
