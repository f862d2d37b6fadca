package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
)

// A hint sent right after a node dies, while the others still see it
// alive (memberlist needs seconds to notice), completes: the dead owner's
// part goes to the next owner in rendezvous order, which is the owner once
// the cluster sees the node gone. So `stoker prefetch --wait` succeeds, and
// the epoch read after the cluster has settled makes no S3 GET: every
// shard was warmed where it is now owned.
func TestHintWhileADeadNodeLooksAlive(t *testing.T) {
	e := newClusterEnv(t)
	a := startNode(t, e.s3env, "a", "")
	b := startNode(t, e.s3env, "b", a.gossip)
	c := startNode(t, e.s3env, "c", a.gossip)
	waitAlive(t, []*clusterNode{a, b, c}, "a", "b", "c")
	// Open the dataset (its index reads every shard, through its owner)
	// while all three are up.
	if owners := a.members(t, e.url).GetOwners(); !slices.Contains(owners, "b") {
		t.Fatalf("node b owns no shard (%v): the test would prove nothing", owners)
	}
	e.proxy.takeCounts()

	b.kill() // SIGKILL
	if alive := aliveNames(a.members(t, "")); !slices.Contains(alive, "b") {
		t.Fatalf("node a already sees b gone (%v): the test would prove nothing", alive)
	}
	out, err := exec.Command(filepath.Join(binDir, "stoker"), "prefetch", "--server", a.grpc, e.url,
		"--epoch", "0", "--seed", "7", "--shuffle-window", "3", "--wait", "--interval", "50ms").CombinedOutput()
	t.Logf("stoker prefetch:\n%s", out)
	if err != nil {
		t.Fatalf("stoker prefetch --wait with a dead owner: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("unreachable")) {
		t.Errorf("a part is unreachable:\n%s", out)
	}
	waitAlive(t, []*clusterNode{a, c}, "a", "c")
	e.proxy.takeCounts() // the hint's GETs: the dead node's shards, read again
	e.checkEpoch(t, readAll(t, dial(t, a), stoker.Epoch{URL: e.url, Seed: 7, BatchSize: 16, ShuffleWindow: 3}))
	if gets := e.proxy.takeCounts(); len(gets) != 0 {
		t.Errorf("the epoch after the hint made S3 GETs (shards no node warmed): %v", gets)
	}
}
