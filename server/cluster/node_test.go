package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startNode(t *testing.T, name string, key []byte, join ...string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.Join, cfg.Key = name, freeAddr(t), join, key
	cfg.RetryJoin = 50 * time.Millisecond
	cfg.Meta = Meta{GRPCAddr: "127.0.0.1:1", Capacity: 1 << 30, Zone: "z-" + name}
	n, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitMembers polls until every node sees exactly names alive.
func waitMembers(t *testing.T, nodes []*Node, names ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			var got []string
			for _, m := range n.Alive() {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, names) {
				ok = false
				if time.Now().After(deadline) {
					t.Fatalf("%s sees %v, want %v", n.Name(), got, names)
				}
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func TestMembershipJoinLeaveAndOwnersAgree(t *testing.T) {
	// memberlist's probe of a member ends at its own timeout, not at
	// Shutdown: it may outlive Close by up to the probe timeout. Every
	// other goroutine of the nodes must be gone.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
	key := []byte("0123456789abcdef")
	a := startNode(t, "a", key)
	b := startNode(t, "b", key, a.cfg.BindAddr)
	c := startNode(t, "c", key, b.cfg.BindAddr)
	waitMembers(t, []*Node{a, b, c}, "a", "b", "c")
	for _, m := range a.Alive() {
		if m.Meta.Zone != "z-"+m.Name || m.Meta.Capacity != 1<<30 {
			t.Fatalf("member %s: metadata %+v", m.Name, m.Meta)
		}
	}
	for i := range 200 {
		k := fmt.Sprintf("s3://b/shard-%d.tar", i)
		oa, _ := a.Owner(k)
		ob, _ := b.Owner(k)
		oc, _ := c.Owner(k)
		if oa.Name != ob.Name || ob.Name != oc.Name {
			t.Fatalf("%s: owners %s, %s, %s differ", k, oa.Name, ob.Name, oc.Name)
		}
	}
	// A node without the key cannot join an encrypted cluster.
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.Join = "intruder", freeAddr(t), []string{a.cfg.BindAddr}
	x, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(x.Alive()); got != 1 {
		t.Fatalf("a node without the key sees %d members", got)
	}
	x.Close()

	// A graceful leave is seen by the others.
	c.Close()
	c.Close() // idempotent
	waitMembers(t, []*Node{a, b}, "a", "b")
	for _, m := range a.Members() {
		if m.Name == "c" && m.State != "gone" {
			t.Fatalf("c is %q after leaving, want gone", m.State)
		}
	}
	a.Close()
	b.Close()
}
