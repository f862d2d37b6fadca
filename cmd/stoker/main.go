// Command stoker is the command line of Stoker: read an epoch, show a
// server's statistics, or run the quickstart demo.
//
//	stoker demo
//	stoker read --server 127.0.0.1:7470 s3://bucket/train-{000000..000099}.tar --epoch 0 --jsonl
//	stoker stats --server 127.0.0.1:7470
//	stoker prefetch --server 127.0.0.1:7470 s3://bucket/train/ --epoch 1 --seed 7 --wait
//	stoker cluster --server 127.0.0.1:7470 [--url s3://bucket/train/]
//	stoker doctor [--unix /run/stoker.sock] [--server unix:///run/stoker.sock]
//	stoker index s3://bucket/train/ [--parallel 16]
//
// read, stats, prefetch, cluster and doctor take --tls-ca, --tls-cert and
// --tls-key for a server that serves TLS (stokerd --tls-cert, --tls-ca), and
// --token-file (or $STOKER_TOKEN) for one that needs a bearer token
// (stokerd --auth-token-file).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: stoker <command> [flags]

commands:
  demo    write a small synthetic WebDataset, serve it in process, read two epochs
  read    read one rank's epoch from a server (--jsonl prints every sample)
  stats   print a server's statistics
  prefetch  send a prefetch hint for a dataset's epochs (--wait shows progress)
  cluster   list the cluster's members, cache fill, hit rates and shard ownership
  doctor    print what this host offers the GPU path (GPUs, NUMA, mlock, huge pages, cuFile, socket) and what Stoker will use
  plan      plan an epoch of a dataset shape (no server) and print its shuffle quality (--order writes the order)
  index     read every shard of a WebDataset and write its index beside the shards (wids-index.json, wids-index.stoker)

read, stats, prefetch, cluster and doctor dial a TLS server (stokerd
--tls-cert) with --tls-ca CA.pem, and add --tls-cert CERT.pem --tls-key
KEY.pem where it verifies clients (stokerd --tls-ca); a unix:// server
stays plaintext. A server started with --auth-token-file needs a bearer
token: --token-file FILE (its first line), or $STOKER_TOKEN.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "demo":
		err = runDemo(ctx, args, os.Stdout)
	case "read":
		err = runRead(ctx, args, os.Stdout, os.Stderr)
	case "stats":
		err = runStats(ctx, args, os.Stdout)
	case "prefetch":
		err = runPrefetch(ctx, args, os.Stderr)
	case "cluster":
		err = runCluster(ctx, args, os.Stdout)
	case "doctor":
		err = runDoctor(ctx, args, os.Stdout)
	case "plan":
		err = runPlan(ctx, args, os.Stdout)
	case "index":
		err = runIndex(ctx, args, os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "stoker: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stoker:", err)
		os.Exit(1)
	}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (stoker read --server A URL --epoch 1).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			continue
		}
	}
}
