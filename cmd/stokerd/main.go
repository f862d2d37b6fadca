// Command stokerd is the Stoker server: it reads WebDataset shards from S3
// or local folders, caches them in memory and on disk, and streams an
// epoch's batches to trainers over gRPC.
//
//	stokerd --listen 127.0.0.1:7470 --http 127.0.0.1:7471 \
//	    --cache-dir /var/cache/stoker --memory-cache 8GiB --disk-cache 500GiB
//
// S3 is configured by the standard AWS variables (AWS_ENDPOINT_URL_S3,
// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stokerd:", err)
		os.Exit(1)
	}
}

type flags struct {
	listen, unix, http, cacheDir string
	memory, disk                 string
	pathStyle                    bool
	maxFetches                   int
	aheadBatches                 int
	logLevel                     string
}

func parseFlags() flags {
	var f flags
	flag.StringVar(&f.listen, "listen", "127.0.0.1:7470", "gRPC address (host:port)")
	flag.StringVar(&f.unix, "unix", "", "also serve gRPC on this unix socket path")
	flag.StringVar(&f.http, "http", "127.0.0.1:7471", "HTTP address for /metrics and /healthz (empty: off)")
	flag.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "folder for the disk tier, manifests and indexes")
	flag.StringVar(&f.memory, "memory-cache", "1GiB", "size of the memory tier")
	flag.StringVar(&f.disk, "disk-cache", "20GiB", "size of the disk tier (0: off)")
	flag.BoolVar(&f.pathStyle, "s3-path-style", false, "force S3 path-style addressing (on by itself for IP and localhost endpoints)")
	flag.IntVar(&f.maxFetches, "max-fetches", prefetch.DefaultShardsConfig().MaxFetches, "shards fetched from storage at once")
	flag.IntVar(&f.aheadBatches, "prefetch-batches", prefetch.DefaultPrefetchConfig().AheadBatches, "batches whose shards are fetched ahead of each stream")
	flag.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()
	return f
}

func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "stoker")
	}
	return filepath.Join(os.TempDir(), "stoker-cache")
}

func run() error {
	f := parseFlags()
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

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
	cfg.Shards.MaxFetches = f.maxFetches
	cfg.Prefetch.AheadBatches = f.aheadBatches

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	s3cfg := prefetch.DefaultS3Config()
	s3cfg.PathStyle = f.pathStyle
	s3, err := prefetch.NewS3Source(ctx, s3cfg)
	if err != nil {
		return err
	}
	sources := prefetch.NewSources(map[string]prefetch.Source{"s3": s3, "file": prefetch.NewFileSource()})
	srv, err := server.New(cfg, sources, log)
	if err != nil {
		return err
	}

	errc := make(chan error, 3)
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	go func() { errc <- srv.Serve(lis) }()
	if f.unix != "" {
		_ = os.Remove(f.unix)
		ul, err := net.Listen("unix", f.unix)
		if err != nil {
			return err
		}
		go func() { errc <- srv.Serve(ul) }()
	}
	var hs *http.Server
	if f.http != "" {
		hl, err := net.Listen("tcp", f.http)
		if err != nil {
			return err
		}
		hs = &http.Server{Handler: srv.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	endpoint, pathStyle := s3.Endpoint()
	log.Info("stokerd serving", "grpc", lis.Addr().String(), "unix", f.unix, "http", f.http,
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
	return srv.Shutdown(sctx)
}
