package main

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
)

// In a cluster each unit is read from S3 once for all the nodes, though
// the next epoch's prefetch runs on both owners beside the epoch and
// trainers read on both nodes: each owner fetches its units once for its
// own trainer, the other node's reads and its prefetch together.
func TestColumnarClusterOneGetPerUnit(t *testing.T) {
	e := newColStore(t)
	want := e.putSynthetic(t, "once/", 3, 4, 250)
	env := e.proxy.env(e.s3.Env())
	a := startNode(t, env, "a", "")
	b := startNode(t, env, "b", a.gossip)
	waitAlive(t, []*clusterNode{a, b}, "a", "b")
	url := "s3://" + bucket + "/once/"
	clients := []*stoker.Client{dial(t, a), dial(t, b)}
	ds, err := clients[1].OpenDatasetFormat(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clients[0].OpenDatasetFormat(context.Background(), url, ""); err != nil {
		t.Fatal(err)
	}
	owners := b.members(t, url).GetOwners()
	if n := strings.Count(strings.Join(owners, ","), "a"); n == 0 || n == len(owners) {
		t.Fatalf("owners %v: each node must own some units, or the test proves nothing", owners)
	}
	e.proxy.take() // the footers

	// The ranks read at once, rank 0 through node a and rank 1 through b.
	ids := make([][]int64, 2)
	var wg sync.WaitGroup
	for rank := range 2 {
		wg.Go(func() {
			ep := stoker.Epoch{URL: url, Seed: 2, Epoch: 1, BatchSize: 40, ShuffleWindow: 3, Rank: rank, WorldSize: 2}
			ids[rank] = readRows(t, clients[rank], ep, want)
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, id := range append(ids[0], ids[1]...) {
		if seen[id] {
			t.Fatalf("row %d delivered twice", id)
		}
		seen[id] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%d rows, want %d", len(seen), len(want))
	}
	checkOnce(t, "epoch through nodes a and b", unitGets(t, ds, e.proxy.take()))
	for _, n := range []*clusterNode{a, b} {
		if got := n.metric(t, "stoker_peer_fallbacks_total"); got != 0 {
			t.Errorf("node %s fell back to S3 %v times", n.name, got)
		}
	}
}
