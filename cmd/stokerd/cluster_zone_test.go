package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
)

// With --zone-local-owners, each zone reads every shard from S3 once and
// its nodes read from each other only. A hint sent to one node warms both
// zones: exactly two GETs per shard, and epochs read through a node of
// each zone then make none.
func TestClusterZoneLocalOwners(t *testing.T) {
	e := newClusterEnv(t)
	zoned := func(name, zone, join string) *clusterNode {
		return startNode(t, e.s3env, name, join, "--zone", zone, "--zone-local-owners")
	}
	a1 := zoned("a1", "a", "")
	a2 := zoned("a2", "a", a1.gossip)
	b1 := zoned("b1", "b", a1.gossip)
	b2 := zoned("b2", "b", a1.gossip)
	nodes := []*clusterNode{a1, a2, b1, b2}
	waitAlive(t, nodes, "a1", "a2", "b1", "b2")

	out, err := exec.Command(filepath.Join(binDir, "stoker"), "prefetch", "--server", a2.grpc, e.url,
		"--epoch", "0", "--seed", "3", "--shuffle-window", "4", "--wait", "--interval", "50ms").CombinedOutput()
	if err != nil {
		t.Fatalf("stoker prefetch: %v\n%s", err, out)
	}
	for _, n := range nodes {
		if !strings.Contains(string(out), n.name) {
			t.Errorf("the hint has no part for %s:\n%s", n.name, out)
		}
	}
	gets := e.proxy.takeCounts()
	for _, sh := range e.shards {
		if n := gets[bucket+"/"+sh.name]; n != 2 {
			t.Errorf("%s: %d S3 GETs for a hint to two zones, want 2", sh.name, n)
		}
	}

	epoch := stoker.Epoch{URL: e.url, Seed: 3, BatchSize: 16, ShuffleWindow: 4}
	e.checkEpoch(t, readAll(t, dial(t, a1), epoch))
	e.checkEpoch(t, readAll(t, dial(t, b2), epoch))
	if gets := e.proxy.takeCounts(); len(gets) != 0 {
		t.Errorf("epochs after the hint made S3 GETs: %v", gets)
	}
	for _, n := range []*clusterNode{a1, b2} {
		var inZone, owned int
		for _, o := range n.members(t, e.url).GetOwners() {
			if o[0] == n.name[0] {
				inZone++
			}
			if o == n.name {
				owned++
			}
		}
		if inZone != len(e.shards) || owned == 0 || owned == len(e.shards) {
			t.Errorf("%s: %d of %d owners in its zone, %d its own; want all in its zone, shared with its zone peer", n.name, inZone, len(e.shards), owned)
		}
	}
}
