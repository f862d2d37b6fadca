package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func newClusterCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	var (
		dial *dialFlags
		url  string
	)
	c := &cobra.Command{
		Use:   "cluster [URL]",
		Short: "List the cluster's members, their cache tiers, hit rates and shard ownership",
		Long: `List the members the server sees: state, gRPC address, zone, what each
cache tier holds, the distinct data cached (a shard in both tiers counts
once) and the hit rate; with a dataset URL (or --url), the shards each
member owns of it.`,
		Example: `  stoker cluster --server node1:7470 s3://bucket/train/`,
		Args:    maxOneURL,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 && url == "" {
				url = args[0]
			}
			return runCluster(c.Context(), dial, url, c.OutOrStdout())
		},
	}
	dial = addDialFlags(c.Flags(), defaultServer, lookupEnv)
	c.Flags().StringVar(&url, "url", "", "dataset `URL` whose shard ownership to show")
	dial.completeFiles(c)
	return c
}

// runCluster lists the members a server sees, with cache fill and hit
// rates, and with url the shards each owns of a dataset.
func runCluster(ctx context.Context, dial *dialFlags, url string, out io.Writer) error {
	c, err := dial.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := stokerv1.NewPeerClient(c.Conn()).Members(ctx, &stokerv1.MembersRequest{Url: url})
	if err != nil {
		return fmt.Errorf("cluster from %s: %w", dial.addr, err)
	}
	printMembers(out, resp, url != "")
	return nil
}

// printMembers writes the members' table.
func printMembers(out io.Writer, resp *stokerv1.MembersResponse, owned bool) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tGRPC\tZONE\tMEMORY\tDISK\tDATA\tHIT RATE\tOWNED")
	for _, m := range resp.GetMembers() {
		name := m.GetName()
		if name == resp.GetSelf() {
			name += " *"
		}
		mem, disk, data, hits := "-", "-", "-", "-"
		if st := m.GetStats(); st != nil {
			mem, disk = tierFill(st.GetMemoryBytes(), st.GetMemoryCapacity()), tierFill(st.GetDiskBytes(), st.GetDiskCapacity())
			if st.CachedBytes != nil {
				data = humanize.IBytes(st.GetCachedBytes())
			}
			if rate, ok := cacheHitRate(st); ok {
				hits = fmt.Sprintf("%.1f%%", 100*rate)
			}
		} else if m.GetError() != "" && m.GetState() == "alive" {
			mem = "unreachable"
		}
		own := "-"
		if owned {
			own = fmt.Sprintf("%d shards, %s", m.GetOwnedShards(), humanize.IBytes(m.GetOwnedBytes()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, m.GetState(), m.GetGrpcAddr(), orDash(m.GetZone()), mem, disk, data, hits, own)
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
