package main

import (
	"strings"
	"testing"
)

// Columnar units (Parquet row groups) are shards of their own in a
// cluster: each has an owner, and a node reads a unit's bytes, not the
// whole file, from it. Every row arrives once and intact through the node
// that owns little.
func TestClusterColumnar(t *testing.T) {
	e := newColStore(t)
	e.putPyarrow(t)
	env := e.proxy.env(e.s3.Env())
	a := startNode(t, env, "a", "")
	b := startNode(t, env, "b", a.gossip)
	waitAlive(t, []*clusterNode{a, b}, "a", "b")

	url := "s3://" + bucket + "/pq/"
	want := expectedRows(t)
	seen := map[string]bool{}
	for _, l := range stokerRead(t, b.grpc, url, "--seed", "5", "--batch-size", "16", "--shuffle-window", "2") {
		checkRowLine(t, l, want, seen)
	}
	if len(seen) != 4*len(want) {
		t.Fatalf("epoch delivered %d rows, want %d", len(seen), 4*len(want))
	}
	owners := b.members(t, url).GetOwners()
	if !strings.Contains(strings.Join(owners, ","), "a") {
		t.Fatalf("node a owns no unit (%v): the test would prove nothing", owners)
	}
	if got := b.metric(t, "stoker_peer_reads_total"); got == 0 {
		t.Error("node b read no unit from its owner")
	}
	if got := b.metric(t, "stoker_peer_fallbacks_total"); got != 0 {
		t.Errorf("node b fell back to S3 %v times", got)
	}
}
