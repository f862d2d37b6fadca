package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// clusterEnv is a real S3 server with the test dataset, a counting proxy
// in front of it, and the S3 settings that point stokerd at the proxy.
type clusterEnv struct {
	*env
	proxy  *s3Proxy
	s3env  []string
	shards []shardFile
}

func newClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	return newClusterEnvOn(t, "127.0.0.1:0")
}

// newClusterEnvOn is newClusterEnv with the proxy listening on addr.
func newClusterEnvOn(t *testing.T, addr string) *clusterEnv {
	t.Helper()
	s3, shards, want := startS3Dataset(t)
	proxy := startS3ProxyOn(t, s3.Endpoint, addr)
	return &clusterEnv{env: &env{s3: s3, want: want, url: "s3://" + bucket + "/train/"}, proxy: proxy, s3env: proxy.env(s3.Env()), shards: shards}
}

// checkOneGetPerShard takes the proxy's GETs and fails the test unless
// they are one of every shard and nothing else; what made them says what.
func (e *clusterEnv) checkOneGetPerShard(t *testing.T, what string) {
	t.Helper()
	gets := e.proxy.takeCounts()
	for _, sh := range e.shards {
		if n := gets[bucket+"/"+sh.name]; n != 1 {
			t.Errorf("%s: %d S3 GETs for %s, want 1", sh.name, n, what)
		}
	}
	if len(gets) != len(e.shards) {
		t.Errorf("S3 GETs of %d objects, want the %d shards: %v", len(gets), len(e.shards), gets)
	}
}

func dial(t *testing.T, n *clusterNode) *stoker.Client {
	t.Helper()
	return dialRetrying(t, n.grpc)
}

// A hint sent to one node warms the owners: S3 sees one GET per shard for
// the hint and an epoch read through one node, and none for the next epoch
// read through another node. Then a fourth node joins and takes about a
// quarter of the ownership, and only that.
func TestClusterOneGetPerShardHintsAndJoin(t *testing.T) {
	e := newClusterEnv(t)
	many, manyDir := manyShards(t, 240) // read by nodes a and d below
	a := startNode(t, e.s3env, "a", "", "--allow-file-root", manyDir)
	b := startNode(t, e.s3env, "b", a.gossip)
	c := startNode(t, e.s3env, "c", a.gossip)
	nodes := []*clusterNode{a, b, c}
	waitAlive(t, nodes, "a", "b", "c")

	// The hint, through the command line, waiting for every owner.
	out, err := exec.Command(filepath.Join(binDir, "stoker"), "prefetch", "--server", a.grpc, e.url,
		"--epoch", "0", "--epochs", "2", "--seed", "7", "--shuffle-window", "3", "--wait", "--interval", "50ms").CombinedOutput()
	if err != nil {
		t.Fatalf("stoker prefetch: %v\n%s", err, out)
	}
	for _, n := range nodes {
		if !bytes.Contains(out, []byte(n.name)) {
			t.Errorf("stoker prefetch output names no part for node %s:\n%s", n.name, out)
		}
	}
	t.Logf("stoker prefetch:\n%s", out)

	epoch := stoker.Epoch{URL: e.url, Seed: 7, BatchSize: 16, ShuffleWindow: 3}
	e.checkEpoch(t, readAll(t, dial(t, a), epoch))
	e.checkOneGetPerShard(t, "the hint and epoch 0")
	owners := a.members(t, e.url).GetOwners()
	var notA int
	for _, o := range owners {
		if o != "a" {
			notA++
		}
	}
	if got := a.metric(t, "stoker_peer_reads_total"); int(got) < notA {
		t.Errorf("node a read %v shards from owners, want at least the %d it does not own", got, notA)
	}

	// Epoch 1 through node c, which never opened the dataset: no S3 GET.
	epoch.Epoch = 1
	e.checkEpoch(t, readAll(t, dial(t, c), epoch))
	if gets := e.proxy.takeCounts(); len(gets) != 0 {
		t.Errorf("epoch 1 after the hint made S3 GETs: %v", gets)
	}

	// The same hint as JSON over HTTP, followed to the end.
	body := fmt.Sprintf(`{"url": %q, "seed": 7, "epochs": [2], "shuffle_window": 3}`, e.url)
	resp, err := http.Post("http://"+b.web+"/v1/prefetch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var hint struct {
		HintID      string `json:"hint_id"`
		ShardsTotal int    `json:"shards_total"`
	}
	err = json.NewDecoder(resp.Body).Decode(&hint)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || hint.HintID == "" || hint.ShardsTotal != len(e.shards) {
		t.Fatalf("POST /v1/prefetch: %d, %+v, %v", resp.StatusCode, hint, err)
	}
	waitHint(t, b, hint.HintID)
	r, err := http.Post("http://"+b.web+"/v1/prefetch", "application/json", strings.NewReader(`{"seed": 1}`))
	if err == nil {
		_ = r.Body.Close()
	}
	if err != nil || r.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /v1/prefetch without a url: want 400, got %v (%v)", r, err)
	}

	// A fourth node joins: about a quarter of a large dataset's shards
	// move, every one of them to the new node.
	before := a.members(t, many).GetOwners()
	d := startNode(t, e.s3env, "d", b.gossip, "--allow-file-root", manyDir)
	nodes = append(nodes, d)
	waitAlive(t, nodes, "a", "b", "c", "d")
	after := a.members(t, many).GetOwners()
	if fromD := d.members(t, many).GetOwners(); strings.Join(fromD, ",") != strings.Join(after, ",") {
		t.Fatal("nodes a and d disagree on the owners")
	}
	moved := 0
	for i := range before {
		if before[i] != after[i] {
			moved++
			if after[i] != "d" {
				t.Fatalf("shard %d moved from %s to %s, not to the new node", i, before[i], after[i])
			}
		}
	}
	t.Logf("a fourth node took %d of %d shards", moved, len(before))
	if f := float64(moved) / float64(len(before)); f < 0.15 || f > 0.35 {
		t.Errorf("%d of %d shards moved (%.0f%%), want about a quarter", moved, len(before), 100*f)
	}

	out, err = exec.Command(filepath.Join(binDir, "stoker"), "cluster", "--server", c.grpc, "--url", e.url).CombinedOutput()
	if err != nil {
		t.Fatalf("stoker cluster: %v\n%s", err, out)
	}
	for _, n := range nodes {
		if !bytes.Contains(out, []byte("zone-"+n.name)) {
			t.Errorf("stoker cluster does not list node %s:\n%s", n.name, out)
		}
	}
	t.Logf("stoker cluster:\n%s", out)
}

// waitHint polls a hint's status until every node is done.
func waitHint(t *testing.T, n *clusterNode, id string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := stokerv1.NewLoaderClient(n.conn).PrefetchStatus(ctx, &stokerv1.PrefetchStatusRequest{HintId: id})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if st.GetDone() {
			for _, p := range st.GetNodes() {
				if p.GetState() != "done" || p.GetBytesDone() != p.GetBytesTotal() {
					t.Fatalf("hint %s on %s: %s, %d of %d bytes (%s)", id, p.GetNode(), p.GetState(), p.GetBytesDone(), p.GetBytesTotal(), p.GetError())
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hint %s not done after 2 minutes: %v", id, st)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// manyShards writes n one-sample shards to a folder and returns its URL
// and the folder (for --allow-file-root).
func manyShards(t *testing.T, n int) (string, string) {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	for i := range n {
		data := goTarShard(t, tar.FormatUSTAR, []string{fmt.Sprintf("s%05d", i)}, sampleData{}, r)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%05d.tar", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return "file://" + dir + "/", dir
}

// A trainer reads from node a, which caches nothing and so reads every
// shard from its owner; node b is killed mid-epoch. The epoch still
// delivers every sample exactly once, in order: a falls back to S3 for
// b's shards until the cluster sees b gone.
func TestClusterNodeKilledMidEpoch(t *testing.T) {
	e := newClusterEnv(t)
	a := startNode(t, e.s3env, "a", "", "--memory-cache", "64KiB", "--disk-cache", "0")
	b := startNode(t, e.s3env, "b", a.gossip)
	c := startNode(t, e.s3env, "c", a.gossip)
	waitAlive(t, []*clusterNode{a, b, c}, "a", "b", "c")
	owners := a.members(t, e.url).GetOwners()
	if !strings.Contains(strings.Join(owners, ","), "b") {
		t.Fatalf("node b owns no shard (%v): the test would prove nothing", owners)
	}

	client := dial(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var samples []*stokerv1.Sample
	steps := 0
	for batch, err := range client.Batches(ctx, stoker.Epoch{URL: e.url, Seed: 11, BatchSize: 4, ShuffleWindow: 2}) {
		if err != nil {
			t.Fatalf("after %d steps: %v", steps, err)
		}
		samples = append(samples, batch.Samples...)
		steps++
		if steps == 3 {
			b.kill() // SIGKILL
		}
	}
	if steps <= 3 {
		t.Fatalf("the epoch had %d steps: node b was not killed mid-epoch", steps)
	}
	e.checkEpoch(t, samples)
	waitAlive(t, []*clusterNode{a, c}, "a", "c")
	t.Logf("node a: %v shards read from owners, %v fallbacks to S3", a.metric(t, "stoker_peer_reads_total"), a.metric(t, "stoker_peer_fallbacks_total"))
}
