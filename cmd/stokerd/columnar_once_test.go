package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/s3test"
)

// In a cluster each unit is read from S3 once for all the nodes, though
// the next epoch's prefetch runs on both owners beside the epoch: node b,
// where the trainers read, fetches the units it owns, and reads node a's
// from a, which fetches each once for b's reads and its own prefetch.
func TestColumnarClusterOneGetPerUnit(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, bucket)
	e := &colEnv{s3: s3, sizes: map[string]int64{}}
	e.proxy = startS3Proxy(t, s3.Endpoint)
	want := e.putSynthetic(t, "once/", 3, 4, 250)
	env := e.proxy.env(s3.Env())
	a := startNode(t, env, "a", "")
	b := startNode(t, env, "b", a.gossip)
	waitAlive(t, []*clusterNode{a, b}, "a", "b")
	url := "s3://" + bucket + "/once/"
	c := dial(t, b)
	ds, err := c.OpenDatasetFormat(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	owners := b.members(t, url).GetOwners()
	if n := strings.Count(strings.Join(owners, ","), "a"); n == 0 || n == len(owners) {
		t.Fatalf("owners %v: each node must own some units, or the test proves nothing", owners)
	}
	e.proxy.take() // the footers

	seen := map[int64]bool{}
	for rank := range 2 {
		ep := stoker.Epoch{URL: url, Seed: 2, Epoch: 1, BatchSize: 40, ShuffleWindow: 3, Rank: rank, WorldSize: 2}
		for _, id := range readRows(t, c, ep, want) {
			if seen[id] {
				t.Fatalf("row %d delivered twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d rows, want %d", len(seen), len(want))
	}
	checkOnce(t, "epoch through node b", unitGets(t, ds, e.proxy.take()))
	if got := b.metric(t, "stoker_peer_fallbacks_total"); got != 0 {
		t.Errorf("node b fell back to S3 %v times", got)
	}
}
