package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// startZoned starts a node in zone, with or without zone-local owners.
func startZoned(t *testing.T, name, zone string, local bool, join ...string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.Join, cfg.ZoneLocal = name, freeAddr(t), join, local
	cfg.RetryJoin = 50 * time.Millisecond
	cfg.Meta = Meta{GRPCAddr: "127.0.0.1:1", Capacity: 1 << 30, Zone: zone}
	n, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// With zone-local owners the nodes of a zone agree on owners from their
// own zone, every zone owns every shard, and Pools has one group per zone;
// without, one owner per shard for the whole cluster.
func TestZoneLocalOwners(t *testing.T) {
	a1 := startZoned(t, "a1", "a", true)
	a2 := startZoned(t, "a2", "a", true, a1.cfg.BindAddr)
	b1 := startZoned(t, "b1", "b", true, a1.cfg.BindAddr)
	b2 := startZoned(t, "b2", "b", true, a1.cfg.BindAddr)
	flat := startZoned(t, "c", "b", false, a1.cfg.BindAddr)
	nodes := []*Node{a1, a2, b1, b2, flat}
	waitMembers(t, nodes, "a1", "a2", "b1", "b2", "c")
	perZone := map[string]map[string]int{"a": {}, "b": {}}
	for i := range 400 {
		k := fmt.Sprintf("s3://b/shard-%d.tar", i)
		oa1, _ := a1.Owner(k)
		oa2, _ := a2.Owner(k)
		ob1, _ := b1.Owner(k)
		ob2, _ := b2.Owner(k)
		if oa1.Name != oa2.Name || ob1.Name != ob2.Name {
			t.Fatalf("%s: zone a says %s and %s, zone b %s and %s", k, oa1.Name, oa2.Name, ob1.Name, ob2.Name)
		}
		if oa1.Meta.Zone != "a" || ob1.Meta.Zone != "b" {
			t.Fatalf("%s: owners %s (zone %s) and %s (zone %s) are outside their zones", k, oa1.Name, oa1.Meta.Zone, ob1.Name, ob1.Meta.Zone)
		}
		perZone["a"][oa1.Name]++
		perZone["b"][ob1.Name]++
		if o, _ := flat.Owner(k); o.Name == "" {
			t.Fatalf("%s: no owner without zone-local owners", k)
		}
	}
	// Zone b's pool has b1, b2 and c: each of the three owns a share.
	if len(perZone["a"]) != 2 || len(perZone["b"]) != 3 {
		t.Fatalf("owners per zone: %v", perZone)
	}
	pools := a1.Pools()
	if len(pools) != 2 || len(pools[0]) != 2 || len(pools[1]) != 3 || pools[0][0].Meta.Zone != "a" {
		t.Fatalf("zone-local pools: %v", pools)
	}
	if p := flat.Pools(); len(p) != 1 || len(p[0]) != 5 {
		t.Fatalf("pools without zone-local owners: %v", p)
	}
}
