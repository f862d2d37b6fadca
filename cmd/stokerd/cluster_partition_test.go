package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// netns is a network namespace joined to the host by a veth pair:
// host side .1 (nodes a and b) and .3 (S3, and the trainer's source
// address), namespace side .2 (node c).
type netns struct {
	name, subnet string
}

func (n *netns) addr(host int) string { return fmt.Sprintf("%s.%d", n.subnet, host) }

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the partition test needs root for ip netns (run the suite as root, as CI does)")
	}
	id := os.Getpid() % 200
	n := &netns{name: fmt.Sprintf("stoker-%d", os.Getpid()), subnet: fmt.Sprintf("10.231.%d", id+1)}
	host, peer := fmt.Sprintf("stkh%d", os.Getpid()), fmt.Sprintf("stkn%d", os.Getpid())
	sh(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.name).Run() }) // takes the veth pair with it
	sh(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	sh(t, "ip", "link", "set", peer, "netns", n.name)
	sh(t, "ip", "addr", "add", n.addr(1)+"/24", "dev", host)
	sh(t, "ip", "addr", "add", n.addr(3)+"/24", "dev", host)
	sh(t, "ip", "link", "set", host, "up")
	sh(t, "ip", "netns", "exec", n.name, "ip", "addr", "add", n.addr(2)+"/24", "dev", peer)
	sh(t, "ip", "netns", "exec", n.name, "ip", "link", "set", peer, "up")
	sh(t, "ip", "netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// partition drops, inside the namespace, every packet to the host's .1
// (nodes a and b); .3 (S3, the trainer) stays reachable.
func (n *netns) partition(t *testing.T) {
	sh(t, "ip", "netns", "exec", n.name, "ip", "route", "add", "blackhole", n.addr(1)+"/32")
}

func (n *netns) heal(t *testing.T) {
	sh(t, "ip", "netns", "exec", n.name, "ip", "route", "del", "blackhole", n.addr(1)+"/32")
}

func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// nodeAt starts a cluster member with all its addresses on ip; in a
// namespace when ns is set.
func nodeAt(t *testing.T, ns *netns, ip string, env []string, name, join string, dialer func(context.Context, string) (net.Conn, error)) *clusterNode {
	t.Helper()
	p := &stokerd{t: t, cacheDir: t.TempDir(), env: env}
	gossip := ip + ":7946"
	if ns == nil {
		p.grpc, p.web, gossip = freeAddrOn(t, ip), freeAddrOn(t, ip), freeAddrOn(t, ip)
	} else {
		p.grpc, p.web = ip+":7470", ip+":7471"
	}
	args := []string{"--listen", p.grpc, "--http", p.web, "--cache-dir", p.cacheDir, "--log-level", "debug",
		"--cluster-addr", gossip, "--node-name", name, "--zone", "zone-" + name}
	if join != "" {
		args = append(args, "--join", join)
	}
	bin := filepath.Join(binDir, "stokerd")
	if ns != nil {
		args = append([]string{"netns", "exec", ns.name, bin}, args...)
		bin = "ip"
	}
	log, err := os.CreateTemp(t.TempDir(), "stokerd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p.log = log
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &clusterNode{stokerd: p, name: name, gossip: gossip, conn: conn}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, merr := stokerv1.NewPeerClient(conn).Members(ctx, &stokerv1.MembersRequest{})
		cancel()
		if merr == nil {
			return n
		}
		select {
		case <-p.exited:
			t.Fatalf("stokerd %s exited at start:\n%s", name, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stokerd %s not answering after 60s: %v\n%s", name, merr, p.logs())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Node c is cut off from a and b (not from S3): each side goes on alone,
// c's trainer reads a whole epoch from S3, and when the network heals c
// rejoins and every node agrees on the owners again.
func TestClusterPartition(t *testing.T) {
	ns := newNetns(t)
	e := newClusterEnvOn(t, ns.addr(3)+":0")
	// The trainer, like S3, uses the .3 address, which the partition spares.
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ns.addr(3))}}
		return d.DialContext(ctx, "tcp", addr)
	}
	a := nodeAt(t, nil, ns.addr(1), e.s3env, "a", "", dialer)
	b := nodeAt(t, nil, ns.addr(1), e.s3env, "b", a.gossip, dialer)
	c := nodeAt(t, ns, ns.addr(2), e.s3env, "c", a.gossip, dialer)
	all := []*clusterNode{a, b, c}
	waitAlive(t, all, "a", "b", "c")

	ns.partition(t)
	waitAlive(t, []*clusterNode{a, b}, "a", "b")
	waitAlive(t, []*clusterNode{c}, "c")
	e.proxy.takeCounts()
	client, err := stoker.Dial(c.grpc, stoker.WithDialOptions(grpc.WithContextDialer(dialer)), stoker.WithRetries(20))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	e.checkEpoch(t, readAll(t, client, stoker.Epoch{URL: e.url, Seed: 3, BatchSize: 8, ShuffleWindow: 2}))
	gets := e.proxy.takeCounts()
	for _, s := range e.shards {
		if gets[bucket+"/"+s.name] != 1 {
			t.Errorf("partitioned node c: %d S3 GETs of %s, want 1 (it owns every shard alone)", gets[bucket+"/"+s.name], s.name)
		}
	}

	ns.heal(t)
	waitAlive(t, all, "a", "b", "c")
	fromA, fromC := a.members(t, e.url).GetOwners(), c.members(t, e.url).GetOwners()
	if fmt.Sprint(fromA) != fmt.Sprint(fromC) {
		t.Fatalf("after healing, a and c disagree on the owners: %v and %v", fromA, fromC)
	}
	e.checkEpoch(t, readAll(t, dial(t, b), stoker.Epoch{URL: e.url, Seed: 3, Epoch: 1, BatchSize: 8, ShuffleWindow: 2}))
}
