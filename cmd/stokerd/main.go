// Command stokerd is the Stoker server: it reads WebDataset shards from S3
// or local folders, caches them in memory and on disk, and streams an
// epoch's batches to trainers over gRPC.
//
//	stokerd --listen 127.0.0.1:7470 --http 127.0.0.1:7471 \
//	    --cache-dir /var/cache/stoker --memory-cache 8GiB --disk-cache 500GiB
//
// S3 is configured by the standard AWS variables (AWS_ENDPOINT_URL_S3,
// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).
//
// A command sits on top: it wires the server, its cluster, the TLS files
// and the flags, and nothing imports it.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles"
	"github.com/stoker-data/stoker/cmd/internal/cli"
	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/server"
	"github.com/stoker-data/stoker/server/cluster"
	"github.com/stoker-data/stoker/server/pipeline"
)

func main() {
	os.Exit(cli.Run(context.Background(), newRoot(os.LookupEnv, run), os.Args[1:], os.Stderr, nil))
}

func run(f flags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log, err := newLogger(os.Stderr, f.logFormat, level)
	if err != nil {
		return err
	}

	cfg := server.DefaultConfig()
	mem, err := humanize.ParseBytes(f.memory)
	if err != nil {
		return fmt.Errorf("--memory-cache %q: %w", f.memory, err)
	}
	disk, err := humanize.ParseBytes(f.disk)
	if err != nil {
		return fmt.Errorf("--disk-cache %q: %w", f.disk, err)
	}
	cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes, cfg.Cache.Dir = int64(mem), int64(disk), filepath.Join(f.cacheDir, "shards")
	cfg.CatalogDir = filepath.Join(f.cacheDir, "catalog")
	if cfg.MemoryRegion, err = gpu.ParseMemoryRegion(f.memoryRegion); err != nil {
		return fmt.Errorf("--memory-region: %w", err)
	}
	cfg.Shards.MaxFetches = f.maxFetches
	cfg.Shards.MaxShardBytes = prefetch.DefaultMaxShardBytes(cfg.Cache.MemoryBytes)
	if f.maxShardSize != "" {
		n, err := humanize.ParseBytes(f.maxShardSize)
		if err != nil || n == 0 || n > math.MaxInt64 {
			return fmt.Errorf("--max-shard-size %q: want a positive size such as 2GiB", f.maxShardSize)
		}
		cfg.Shards.MaxShardBytes = int64(n)
	}
	part, err := humanize.ParseBytes(f.fetchPartSize)
	if err != nil || part > math.MaxInt64 {
		return fmt.Errorf("--fetch-part-size %q: want a size such as 8MiB, or 0", f.fetchPartSize)
	}
	cfg.Shards.Fetch.PartSize = int64(part)
	cfg.Prefetch.AheadBatches = f.aheadBatches
	cfg.Pipeline.Workers = f.pipelineWorkers
	cfg.Profiling = f.pprof
	tokens, err := f.sec.apply(&cfg, log)
	if err != nil {
		return err
	}
	var stopTracing func()
	if cfg.Tracer, stopTracing, err = startTracing(f.otlpEndpoint); err != nil {
		return err
	}
	defer stopTracing()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	s3cfg := s3.DefaultConfig()
	s3cfg.PathStyle = f.pathStyle
	s3cfg.ReadIdleTimeout = f.s3ReadTimeout
	s3src, err := s3.New(ctx, s3cfg)
	if err != nil {
		return err
	}
	sources, err := f.sec.sources(s3src, storage.NewFileSource())
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	tlsFiles, err := loadTLS(f, log)
	if err != nil {
		lis.Close()
		return err
	}
	if tlsFiles != nil {
		cfg.TLS = tlsFiles.ServerConfig()
	}
	if f.sec.httpTLS && tlsFiles == nil {
		lis.Close()
		return errors.New("--http-tls needs --tls-cert and --tls-key")
	}
	node, err := startCluster(ctx, f, lis.Addr().String(), cfg.Cache.MemoryBytes+cfg.Cache.DiskBytes, tlsFiles, tokens, log)
	if err != nil {
		lis.Close()
		return err
	}
	cfg.Cluster = node
	ul, socket, err := listenUnix(f.unix, lis.Addr(), log)
	if err != nil {
		lis.Close()
		return err
	}
	cfg.Shm.Socket = socket
	srv, err := server.New(cfg, sources, log)
	if err != nil {
		return err
	}

	errc := make(chan error, 3)
	if node != nil {
		defer node.Close()
	}
	go func() { errc <- srv.Serve(lis) }()
	if ul != nil {
		go func() { errc <- srv.Serve(ul) }()
	}
	var hs *http.Server
	if f.http != "" {
		hl, err := net.Listen("tcp", f.http)
		if err != nil {
			return err
		}
		if f.sec.httpTLS {
			hl = tls.NewListener(hl, httpTLS(tlsFiles))
		}
		hs = &http.Server{Handler: srv.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	host := srv.Host()
	log.Info("gpu host", "gpus", host.GPUs.String(), "numa_nodes", host.NUMANodes, "memlock_bytes", host.MemlockBytes,
		"huge_page_bytes", host.HugePageBytes, "huge_pages_free", host.HugePagesFree, "cufile", host.CuFile,
		"cufile_reason", host.CuFileReason, "shm_dir", host.ShmDir)
	log.Info("pipeline", "jpeg_decoder", pipeline.JPEGDecoder, "workers", cmp.Or(max(f.pipelineWorkers, 0), runtime.GOMAXPROCS(0)))
	endpoint, pathStyle := s3src.Endpoint()
	log.Info("stokerd serving", "grpc", lis.Addr().String(), "tls", tlsMode(f), "unix", socket, "http", f.http, "http_tls", f.sec.httpTLS,
		"auth", tokens != nil, "file_roots", f.sec.fileRoots.String(), "s3_prefixes", f.sec.s3Prefixes.String(),
		"memory_cache", humanize.IBytes(mem), "disk_cache", humanize.IBytes(disk), "cache_dir", f.cacheDir,
		"s3_endpoint", endpoint, "s3_path_style", pathStyle)

	select {
	case <-ctx.Done():
		log.Info("stopping: draining open streams")
	case err := <-errc:
		if err != nil {
			log.Error("serve failed", "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if hs != nil {
		_ = hs.Shutdown(sctx)
	}
	if node != nil {
		_ = node.Close() // leave first, so the others stop reading shards from this node
	}
	return srv.Shutdown(sctx)
}

// startCluster joins the cluster when --cluster-addr is set; nil otherwise.
// With TLS files the node reads from the others over TLS, its certificate
// as client certificate; with a token file it sends its token.
func startCluster(ctx context.Context, f flags, grpcAddr string, capacity int64, tlsFiles *tlsfiles.Files, tokens *stoker.TokenFile, log *slog.Logger) (*cluster.Node, error) {
	if f.clusterAddr == "" {
		if f.join != "" {
			return nil, errors.New("--join needs --cluster-addr")
		}
		return nil, nil
	}
	cfg := cluster.DefaultConfig()
	cfg.Name, cfg.BindAddr = f.nodeName, f.clusterAddr
	if f.join != "" {
		cfg.Join = strings.Split(f.join, ",")
	}
	if f.advertise != "" {
		grpcAddr = f.advertise
	}
	cfg.Meta = cluster.Meta{GRPCAddr: grpcAddr, Capacity: capacity, Zone: f.zone}
	cfg.ZoneLocal = f.zoneLocal
	if tokens != nil {
		cfg.Peer.Token = tokens.Credentials()
	}
	if tlsFiles != nil {
		cfg.Peer.Credentials = tlsFiles.Credentials()
		checkCertNames(tlsFiles, grpcAddr, log)
	}
	if f.keyFile != "" {
		key, err := readKey(f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-key-file: %w", err)
		}
		cfg.Key = key
	}
	return cluster.Start(ctx, cfg, log)
}

// readKey reads a gossip key: base64 text, or the raw bytes.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(b))
	if k, err := base64.StdEncoding.DecodeString(text); err == nil && (len(k) == 16 || len(k) == 24 || len(k) == 32) {
		return k, nil
	}
	if n := len(text); n == 16 || n == 24 || n == 32 {
		return []byte(text), nil
	}
	return nil, fmt.Errorf("%s: want 16, 24 or 32 bytes (raw or base64), got %d", path, len(b))
}

// loadTLS reads the --tls-* files; nil when TLS is off.
func loadTLS(f flags, log *slog.Logger) (*tlsfiles.Files, error) {
	if f.tlsCert == "" && f.tlsKey == "" && f.tlsCA == "" {
		return nil, nil
	}
	if f.tlsCert == "" || f.tlsKey == "" {
		return nil, errors.New("TLS needs this server's certificate and key: give --tls-cert and --tls-key (and --tls-ca to verify clients)")
	}
	files, err := tlsfiles.Load(f.tlsCA, f.tlsCert, f.tlsKey, log.With("tls_cert", f.tlsCert))
	if err != nil {
		return nil, fmt.Errorf("--tls-*: %w", err)
	}
	return files, nil
}

// tlsMode says how gRPC on TCP is served: off, tls, or mutual (client
// certificates required).
func tlsMode(f flags) string {
	switch {
	case f.tlsCert == "":
		return "off"
	case f.tlsCA == "":
		return "tls"
	}
	return "mutual"
}

// checkCertNames warns when this node's certificate does not name the host
// of the gRPC address it publishes: the other nodes verify that name, so
// they would refuse it and read its shards from storage instead.
func checkCertNames(files *tlsfiles.Files, grpcAddr string, log *slog.Logger) {
	host, _, err := net.SplitHostPort(grpcAddr)
	leaf := files.Leaf()
	if err != nil || leaf == nil {
		return
	}
	if err := leaf.VerifyHostname(host); err != nil {
		log.Warn("the TLS certificate does not name this node's gRPC address: the other nodes will refuse it (set --advertise, or add the name to the certificate)",
			"grpc", grpcAddr, "dns_names", leaf.DNSNames, "ip_addresses", leaf.IPAddresses, "err", err)
	}
}
