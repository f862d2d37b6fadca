package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/server"
)

// securityFlags are what stokerd may read, who may call it, and how much
// one client may hold.
type securityFlags struct {
	fileRoots, s3Prefixes listFlag
	tokenFile             string
	metricsOpen, httpTLS  bool
	maxStreams, perConn   int
	maxShm, maxShmPerConn string
}

// listFlag is a repeatable flag; from the environment or a
// configuration file it takes a list (pflag.SliceValue).
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
func (*listFlag) Type() string         { return "list" }

func (l *listFlag) Append(v string) error     { return l.Set(v) }
func (l *listFlag) Replace(vs []string) error { *l = append((*l)[:0], vs...); return nil }
func (l *listFlag) GetSlice() []string        { return *l }

var _ pflag.SliceValue = (*listFlag)(nil)

func (s *securityFlags) register(fs *pflag.FlagSet) {
	d := server.DefaultLimits()
	fs.Var(&s.fileRoots, "allow-file-root", "serve file:// datasets under this `folder` (repeatable; links are resolved, and one out of every folder is refused). Without it file:// URLs are refused")
	fs.Var(&s.s3Prefixes, "allow-s3", "read only S3 objects under this `prefix`, like s3://bucket/ or s3://bucket/train/ (repeatable; matched as a string prefix). Without it every object the credentials reach")
	fs.StringVar(&s.tokenFile, "auth-token-file", "", "file of bearer tokens, one a line: every gRPC call and HTTP request but /healthz must carry one; the node sends the first to the other nodes. Re-read when the file changes")
	fs.BoolVar(&s.metricsOpen, "metrics-without-auth", false, "with --auth-token-file, serve /metrics without a token (for a scraper on a trusted network)")
	fs.BoolVar(&s.httpTLS, "http-tls", false, "serve the HTTP address with TLS, with --tls-cert and --tls-key (and client certificates verified by --tls-ca when given)")
	fs.IntVar(&s.maxStreams, "max-streams", d.MaxStreams, "streams open at once over all clients (batch streams, and shard reads of the other nodes)")
	fs.IntVar(&s.perConn, "max-streams-per-conn", d.MaxStreamsPerConn, "streams open at once on one client connection")
	fs.StringVar(&s.maxShm, "max-shm", humanize.IBytes(uint64(d.MaxShmBytes)), "bytes of shared-memory regions open at once over all streams")
	fs.StringVar(&s.maxShmPerConn, "max-shm-per-conn", humanize.IBytes(uint64(d.MaxShmBytesPerConn)), "bytes of shared-memory regions open at once for the streams of one connection")
}

// sources wraps the storage sources in the allow-lists.
func (s *securityFlags) sources(s3, file storage.Source) (*storage.Sources, error) {
	files, err := storage.AllowFiles(file, s.fileRoots)
	if err != nil {
		return nil, fmt.Errorf("--allow-file-root: %w", err)
	}
	objs, err := storage.AllowS3(s3, s.s3Prefixes)
	if err != nil {
		return nil, fmt.Errorf("--allow-s3: %w", err)
	}
	return storage.NewSources(map[string]storage.Source{"s3": objs, "file": files}), nil
}

// apply sets the server's limits and auth; the token file (nil without
// --auth-token-file) is returned for the cluster too.
func (s *securityFlags) apply(cfg *server.Config, log *slog.Logger) (*stoker.TokenFile, error) {
	shm, err := humanize.ParseBytes(s.maxShm)
	if err != nil {
		return nil, fmt.Errorf("--max-shm %q: %w", s.maxShm, err)
	}
	shmPerConn, err := humanize.ParseBytes(s.maxShmPerConn)
	if err != nil {
		return nil, fmt.Errorf("--max-shm-per-conn %q: %w", s.maxShmPerConn, err)
	}
	if s.maxStreams <= 0 || s.perConn <= 0 || shm == 0 || shmPerConn == 0 {
		return nil, errors.New("--max-streams, --max-streams-per-conn, --max-shm and --max-shm-per-conn must be positive")
	}
	cfg.Limits = server.Limits{MaxStreams: s.maxStreams, MaxStreamsPerConn: s.perConn, MaxShmBytes: int64(shm), MaxShmBytesPerConn: int64(shmPerConn)}
	cfg.MetricsWithoutAuth = s.metricsOpen
	if s.tokenFile == "" {
		if s.metricsOpen {
			return nil, errors.New("--metrics-without-auth needs --auth-token-file")
		}
		return nil, nil
	}
	tokens, err := stoker.LoadTokenFile(s.tokenFile, log.With("auth_token_file", s.tokenFile))
	if err != nil {
		return nil, fmt.Errorf("--auth-token-file: %w", err)
	}
	cfg.Auth = tokens
	return tokens, nil
}

// httpTLS is the TLS configuration of the HTTP address: the gRPC port's
// certificate (and client verification), re-read as the files change,
// offering HTTP/1.1 alone (the gRPC port's configuration offers h2 alone,
// which curl and Prometheus would not get past, and the listener is
// served as HTTP/1.1).
func httpTLS(files *tlsfiles.Files) *tls.Config {
	base := files.ServerConfig()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := base.GetConfigForClient(hello)
			if err != nil {
				return nil, err
			}
			c = c.Clone()
			c.NextProtos = []string{"http/1.1"}
			return c, nil
		},
	}
}
