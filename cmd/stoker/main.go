// Command stoker is the command line of Stoker: read an epoch, show a
// server's statistics, or run the quickstart demo.
//
//	stoker demo
//	stoker read --server 127.0.0.1:7470 's3://bucket/train-{000000..000099}.tar' --epoch 0 --jsonl
//	stoker stats --server 127.0.0.1:7470
//	stoker prefetch --server 127.0.0.1:7470 s3://bucket/train/ --epoch 1 --seed 7 --wait
//	stoker cluster --server 127.0.0.1:7470 [--url s3://bucket/train/]
//	stoker doctor [--unix /run/stoker.sock] [--server unix:///run/stoker.sock]
//	stoker index s3://bucket/train/ [--parallel 16]
//	stoker completion bash
//
// read, stats, prefetch, cluster and doctor take --tls-ca, --tls-cert and
// --tls-key for a server that serves TLS (stokerd --tls-cert, --tls-ca), and
// --token-file (or $STOKER_TOKEN) for one that needs a bearer token
// (stokerd --auth-token-file). Every flag can also be set by a STOKER_*
// environment variable ($STOKER_SERVER for --server).
//
// A command sits on top: it may import any package, and none imports it.
// Only demo runs a server in process; the others are clients of one
// (doctor plans from gpu's facts, not the server's code).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/cmd/internal/cli"
)

// envPrefix starts the environment variable of every flag:
// --server is $STOKER_SERVER.
const envPrefix = "STOKER"

const rootLong = `stoker reads epochs from a stokerd, shows its statistics and its cluster,
warms its cache, and indexes datasets.

read, stats, prefetch, cluster and doctor dial a TLS server (stokerd
--tls-cert) with --tls-ca CA.pem, and add --tls-cert CERT.pem --tls-key
KEY.pem where it verifies clients (stokerd --tls-ca); a unix:// server
stays plaintext. A server started with --auth-token-file needs a bearer
token: --token-file FILE (its first line), or $STOKER_TOKEN.

Every flag can also be set in the environment: STOKER_ and the flag's
name in capitals, dashes as underscores ($STOKER_SERVER for --server,
$STOKER_TLS_CA for --tls-ca). The command line wins over the environment.

Quote dataset URLs that hold braces, or the shell expands them:
  stoker read 's3://bucket/train-{000000..000099}.tar'`

// envFooter closes every subcommand's help.
const envFooter = `
Environment:
  Each flag is also read from STOKER_<FLAG> (--server: $STOKER_SERVER,
  --batch-size: $STOKER_BATCH_SIZE); the command line wins. A server's
  bearer token may be given as $STOKER_TOKEN.
`

// newRoot builds the stoker command. lookupEnv reads the environment
// (os.LookupEnv; tests give their own).
func newRoot(lookupEnv func(string) (string, bool)) *cobra.Command {
	root := &cobra.Command{
		Use:   "stoker",
		Short: "Read, warm and inspect a Stoker server's datasets",
		Long:  rootLong,
		Args:  cli.UnknownCommand,
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(c.ErrOrStderr())
			_ = c.Usage()
			return cli.Usagef(c, "want a command")
		},
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if err := cli.BindEnv(c.Flags(), envPrefix, lookupEnv, "help", "version"); err != nil {
				return cli.Usagef(c, "%v", err)
			}
			return nil
		},
	}
	cli.Setup(root)
	root.DisableFlagsInUseLine = true // "stoker [command]": the flags are the commands'
	root.AddCommand(newDemoCmd(), newReadCmd(lookupEnv), newStatsCmd(lookupEnv), newPrefetchCmd(lookupEnv), newClusterCmd(lookupEnv),
		newDoctorCmd(lookupEnv), newPlanCmd(), newIndexCmd())
	for _, c := range root.Commands() {
		c.Flags().SortFlags = false
		c.SetUsageTemplate(c.UsageTemplate() + envFooter)
	}
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, newRoot(os.LookupEnv), os.Args[1:], os.Stderr, explain)
	stop()
	os.Exit(code)
}
