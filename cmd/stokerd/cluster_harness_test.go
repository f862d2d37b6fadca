package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// clusterNode is a stokerd process that is a member of a cluster.
type clusterNode struct {
	*stokerd
	name, gossip string
	conn         *grpc.ClientConn
}

// startNode starts a cluster member; join is a gossip address or empty.
func startNode(t testing.TB, env []string, name, join string, extra ...string) *clusterNode {
	t.Helper()
	gossip := freeAddr(t)
	args := append([]string{"--cluster-addr", gossip, "--node-name", name, "--zone", "zone-" + name}, extra...)
	if join != "" {
		args = append(args, "--join", join)
	}
	p := startStokerd(t, env, t.TempDir(), args...)
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &clusterNode{stokerd: p, name: name, gossip: gossip, conn: conn}
}

func (n *clusterNode) members(t testing.TB, url string) *stokerv1.MembersResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := stokerv1.NewPeerClient(n.conn).Members(ctx, &stokerv1.MembersRequest{Url: url})
	if err != nil {
		t.Fatalf("members from %s: %v", n.name, err)
	}
	return r
}

func aliveNames(r *stokerv1.MembersResponse) []string {
	var out []string
	for _, m := range r.GetMembers() {
		if m.GetState() == "alive" {
			out = append(out, m.GetName())
		}
	}
	return out
}

// waitAlive polls until every node sees exactly the given names alive.
func waitAlive(t testing.TB, nodes []*clusterNode, names ...string) {
	t.Helper()
	want := strings.Join(names, ",")
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range nodes {
		for {
			got := strings.Join(aliveNames(n.members(t, "")), ",")
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %s alive, want %s", n.name, got, want)
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}
}

// metric reads one unlabelled value from the node's /metrics.
func (n *clusterNode) metric(t testing.TB, name string) float64 {
	t.Helper()
	r, err := http.Get("http://" + n.web + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.name, err)
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found on %s", name, n.name)
	return 0
}
