package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stoker-data/stoker/cmd/internal/cli"
	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
)

// envPrefix starts the environment variable of every flag:
// --memory-cache is $STOKERD_MEMORY_CACHE.
const envPrefix = "STOKERD"

const rootLong = `stokerd is the Stoker server: it reads WebDataset and Parquet/Arrow shards
from S3 or local folders, caches them in memory and on disk, plans each
epoch's shuffle, and streams batches to trainers over gRPC (and shared
memory on the same host). Nodes given --cluster-addr and --join form a
cluster that reads each shard from storage once.

S3 is configured by the standard AWS variables (AWS_ENDPOINT_URL_S3,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).

Every flag can also be set by an environment variable, STOKERD_ and the
flag's name in capitals with dashes as underscores ($STOKERD_MEMORY_CACHE
for --memory-cache; a repeatable flag takes a comma-separated list), or in
a --config file, YAML (.yaml, .yml, .json) or TOML (.toml), whose keys are
the flags' names:

  # stokerd.yaml
  listen: 0.0.0.0:7470
  memory-cache: 64GiB
  disk-cache: 2TiB
  allow-s3: [s3://datasets/train/, s3://datasets/val/]

The command line wins over the environment, the environment over the file.`

const rootExample = `  stokerd --listen 127.0.0.1:7470 --http 127.0.0.1:7471 \
      --cache-dir /var/cache/stoker --memory-cache 8GiB --disk-cache 500GiB
  stokerd --config /etc/stoker/stokerd.yaml
  STOKERD_MEMORY_CACHE=8GiB stokerd --allow-s3 s3://datasets/`

// newRoot builds the stokerd command: its flags, read from the command
// line, then the environment (lookupEnv: os.LookupEnv, or a test's), then
// the --config file, are handed to run.
func newRoot(lookupEnv func(string) (string, bool), run func(flags) error) *cobra.Command {
	var f *flags
	root := &cobra.Command{
		Use:     "stokerd",
		Short:   "The Stoker server: caches datasets from S3 and streams batches to trainers",
		Long:    rootLong,
		Example: rootExample,
		Args:    cli.NoArgs,
		PreRunE: func(c *cobra.Command, _ []string) error {
			if err := settle(c.Flags(), f, lookupEnv); err != nil {
				return &cli.UsageError{Cmd: c, Err: err}
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return run(*f) },
	}
	cli.Setup(root)
	root.Flags().SortFlags = false
	f = defineFlags(root.Flags())
	completions(root)
	return root
}

// settle fills the flags the command line left unset from the
// environment, then from the --config file.
func settle(fs *pflag.FlagSet, f *flags, lookupEnv func(string) (string, bool)) error {
	skip := []string{"help", "version"}
	if err := cli.BindEnv(fs, envPrefix, lookupEnv, skip...); err != nil {
		return err
	}
	if f.config == "" {
		return nil
	}
	return cli.ApplyConfigFile(fs, f.config, append(skip, "config")...)
}

type flags struct {
	listen, unix, http, cacheDir string
	memory, disk, memoryRegion   string
	pathStyle                    bool
	s3ReadTimeout                time.Duration
	maxShardSize                 string
	maxFetches                   int
	fetchPartSize                string
	aheadBatches                 int
	pipelineWorkers              int
	logLevel                     string
	logFormat                    string
	otlpEndpoint                 string
	pprof                        bool
	// cluster
	clusterAddr, join, nodeName, zone, keyFile, advertise string
	zoneLocal                                             bool
	// TLS
	tlsCert, tlsKey, tlsCA string
	// allow-lists, auth, limits
	sec securityFlags
	// the configuration file the other settings may come from
	config string
}

// defineFlags defines every stokerd flag on fs: the one place a flag is
// added (fs.StringVar and the like take the same arguments as the
// standard flag package's).
func defineFlags(fs *pflag.FlagSet) *flags {
	var f flags
	fs.StringVar(&f.config, "config", "", "read settings from this YAML or TOML `file` (keys: the flags' names); the command line and the environment win over it")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7470", "gRPC address (host:port)")
	fs.StringVar(&f.unix, "unix", socketAuto, "also serve gRPC on this unix socket path, named to local clients for shared memory (auto: <tmp>/stoker-<uid>/stokerd-<port>.sock; empty: none)")
	fs.StringVar(&f.http, "http", "127.0.0.1:7471", "HTTP address for /metrics, /healthz and the prefetch API (empty: off)")
	fs.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "folder for the disk tier, manifests and indexes")
	fs.StringVar(&f.memory, "memory-cache", "1GiB", "size of the memory tier")
	fs.StringVar(&f.disk, "disk-cache", "20GiB", "size of the disk tier (0: off)")
	fs.StringVar(&f.memoryRegion, "memory-region", string(gpu.RegionAuto),
		"where the memory tier lives: auto (one mapped region, locked when a GPU is found, on the GPUs' NUMA node), locked (locked always) or heap (the Go heap)")
	fs.BoolVar(&f.pathStyle, "s3-path-style", false, "force S3 path-style addressing (on by itself for IP and localhost endpoints)")
	fs.DurationVar(&f.s3ReadTimeout, "s3-read-timeout", s3.DefaultConfig().ReadIdleTimeout,
		"longest wait for progress on an S3 request (its headers, then each read of its body); a stalled GET is resumed where it stopped, a bounded number of times")
	fs.StringVar(&f.maxShardSize, "max-shard-size", "",
		"most bytes one shard may hold (a tar after gunzip, a columnar unit): larger ones, gzip bombs among them, are refused naming the object (default: the memory tier, at least 256MiB, at most 4GiB)")
	fs.IntVar(&f.maxFetches, "max-fetches", prefetch.DefaultShardsConfig().MaxFetches, "shards fetched from storage at once")
	fs.StringVar(&f.fetchPartSize, "fetch-part-size", "0", "size of the ranged reads a shard is fetched in (0: sized from the storage's first byte and per-connection rate)")
	_ = fs.MarkHidden("fetch-part-size") // for comparing part sizes in benchmarks
	fs.IntVar(&f.aheadBatches, "prefetch-batches", prefetch.DefaultPrefetchConfig().AheadBatches, "batches whose shards are fetched ahead of each stream")
	fs.IntVar(&f.pipelineWorkers, "pipeline-workers", 0, "samples decoded and augmented at once for streams that ask for a pipeline (0: one per core)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text (key=value lines) or json (one object a line)")
	fs.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "trace batch streams (open, fetch, send) with OpenTelemetry, exported by OTLP/gRPC to this URL (http://collector:4317; OTEL_EXPORTER_OTLP_* set the rest); empty: off")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's CPU, heap and goroutine profiles under /debug/pprof/ on the --http port (behind --auth-token-file when set)")
	fs.StringVar(&f.clusterAddr, "cluster-addr", "", "gossip address (host:port, TCP and UDP) of this node; empty: no cluster")
	fs.StringVar(&f.join, "join", "", "gossip addresses of cluster members to join (host:port[,…])")
	fs.StringVar(&f.nodeName, "node-name", "", "unique name of this node in the cluster (default hostname:gossip-port)")
	fs.StringVar(&f.zone, "zone", "", "failure domain of this node (rack, availability zone), shown to the cluster")
	fs.BoolVar(&f.zoneLocal, "zone-local-owners", false, "give each --zone its own owner of every shard: storage is read once per zone and no shard crosses zones between nodes (set on every node)")
	fs.StringVar(&f.keyFile, "cluster-key-file", "", "file holding the gossip encryption key (16, 24 or 32 bytes, raw or base64)")
	fs.StringVar(&f.advertise, "advertise", "", "gRPC address the other nodes reach this one at (default: the --listen address)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate: serve gRPC on TCP with TLS (the unix socket stays plaintext); also this node's client certificate to the other nodes. Re-read when the file changes")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle: require and verify client certificates (trainers and nodes: mutual TLS) and verify the other nodes' certificates. Re-read when the file changes")
	f.sec.register(fs)

	return &f
}

// completions tells the shell what each flag's value may be.
func completions(c *cobra.Command) {
	for _, name := range []string{"tls-cert", "tls-key", "tls-ca", "cluster-key-file", "auth-token-file"} {
		_ = c.MarkFlagFilename(name)
	}
	_ = c.MarkFlagFilename("config", "yaml", "yml", "json", "toml")
	for _, name := range []string{"cache-dir", "allow-file-root"} {
		_ = c.MarkFlagDirname(name)
	}
	fixed := func(values ...string) cobra.CompletionFunc {
		return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return values, cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = c.RegisterFlagCompletionFunc("memory-region", fixed(string(gpu.RegionAuto), string(gpu.RegionLocked), string(gpu.RegionHeap)))
	_ = c.RegisterFlagCompletionFunc("log-level", fixed("debug", "info", "warn", "error"))
}

func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "stoker")
	}
	return filepath.Join(os.TempDir(), "stoker-cache")
}
