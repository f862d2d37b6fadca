package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// runCluster lists the members a server sees, with cache fill and hit
// rates, and with --url the shards each owns of a dataset.
func runCluster(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	addr := fs.String("server", "127.0.0.1:7470", "server address (host:port or unix:///path)")
	url := fs.String("url", "", "dataset URL whose shard ownership to show")
	tf := addDialFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && *url == "" {
		*url = pos[0]
	}
	c, err := tf.dial(*addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := stokerv1.NewPeerClient(c.Conn()).Members(ctx, &stokerv1.MembersRequest{Url: *url})
	if err != nil {
		return fmt.Errorf("cluster from %s: %w", *addr, err)
	}
	fmt.Fprintf(out, "%-24s %-8s %-22s %-8s %-22s %-9s %s\n", "MEMBER", "STATE", "GRPC", "ZONE", "CACHE", "HIT RATE", "OWNED")
	for _, m := range resp.GetMembers() {
		name := m.GetName()
		if name == resp.GetSelf() {
			name += " *"
		}
		cache, hits := "-", "-"
		if st := m.GetStats(); st != nil {
			cache = fmt.Sprintf("%s / %s", humanize.IBytes(st.GetMemoryBytes()+st.GetDiskBytes()), humanize.IBytes(st.GetMemoryCapacity()+st.GetDiskCapacity()))
			if rate, ok := cacheHitRate(st); ok {
				hits = fmt.Sprintf("%.1f%%", 100*rate)
			}
		} else if m.GetError() != "" && m.GetState() == "alive" {
			cache = "unreachable"
		}
		owned := "-"
		if *url != "" {
			owned = fmt.Sprintf("%d shards, %s", m.GetOwnedShards(), humanize.IBytes(m.GetOwnedBytes()))
		}
		fmt.Fprintf(out, "%-24s %-8s %-22s %-8s %-22s %-9s %s\n", name, m.GetState(), m.GetGrpcAddr(), m.GetZone(), cache, hits, owned)
	}
	return nil
}
