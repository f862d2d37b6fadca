package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles/tlstest"
)

// tlsArgs are the flags of f, the same for stokerd (mutual TLS) and for
// the stoker command.
func tlsArgs(f tlstest.Files) []string {
	return []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
}

// dialTLS is dial over TLS with f's files.
func dialTLS(t *testing.T, n *clusterNode, f tlstest.Files) *stoker.Client {
	t.Helper()
	return dialRetrying(t, n.grpc, stoker.WithTLSFiles(f.Load(t)))
}

// useTLS points the harness's own connection to n (members, hints) at TLS.
func useTLS(t *testing.T, n *clusterNode, f tlstest.Files) {
	t.Helper()
	old := n.conn
	n.conn = dialTLS(t, n, f).Conn()
	old.Close()
}

// Two nodes with mutual TLS, each with its own certificate from the job's
// CA: a trainer reads an epoch through each, every byte checked, the nodes
// reading each other's shards over TLS, so S3 sees exactly one GET per
// shard. The command line reaches them with --tls-*; without, it is told
// TLS is required. A node's certificate files, replaced, are presented to
// the next connection; the unix socket stays plaintext.
func TestClusterMutualTLS(t *testing.T) {
	e := newClusterEnv(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "job CA")
	aFiles := tlstest.Write(t, dir, "a", ca.Issue(t, "node a", "127.0.0.1"), ca)
	bFiles := tlstest.Write(t, dir, "b", ca.Issue(t, "node b", "127.0.0.1"), ca)
	trainer := tlstest.Write(t, dir, "trainer", ca.Issue(t, "trainer"), ca)
	sock := filepath.Join(t.TempDir(), "b.sock")

	a := startNode(t, e.s3env, "a", "", tlsArgs(aFiles)...)
	b := startNode(t, e.s3env, "b", a.gossip, append(tlsArgs(bFiles), "--unix", sock)...)
	useTLS(t, a, trainer)
	useTLS(t, b, trainer)
	nodes := []*clusterNode{a, b}
	waitAlive(t, nodes, "a", "b")
	owners := a.members(t, e.url).GetOwners()
	if !slices.Contains(owners, "a") || !slices.Contains(owners, "b") {
		t.Fatalf("owners %v: each node must own a shard for the test to prove anything", owners)
	}

	epoch := stoker.Epoch{URL: e.url, Seed: 3, BatchSize: 8, ShuffleWindow: 3}
	e.checkEpoch(t, readAll(t, dialTLS(t, a, trainer), epoch))
	epoch.Epoch = 1
	e.checkEpoch(t, readAll(t, dialTLS(t, b, trainer), epoch))
	e.checkOneGetPerShard(t, "two epochs through two nodes")
	for _, n := range nodes {
		reads, served, fallbacks := n.metric(t, "stoker_peer_reads_total"), n.metric(t, "stoker_peer_served_total"), n.metric(t, "stoker_peer_fallbacks_total")
		t.Logf("node %s: %v shards read from the other, %v served to it, %v fallbacks", n.name, reads, served, fallbacks)
		if reads == 0 || served == 0 || fallbacks != 0 {
			t.Errorf("node %s read %v shards from its peer and served %v, with %v fallbacks to S3: want both > 0 and no fallback", n.name, reads, served, fallbacks)
		}
	}

	// The command line, with and without TLS.
	stokerCmd := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(binDir, "stoker"), args...).CombinedOutput()
		return string(out), err
	}
	out, err := stokerCmd(append([]string{"cluster", "--server", a.grpc, "--url", e.url}, tlsArgs(trainer)...)...)
	if err != nil {
		t.Fatalf("stoker cluster over TLS: %v\n%s", err, out)
	}
	if !strings.Contains(out, "zone-a") || !strings.Contains(out, "zone-b") || strings.Contains(out, "unreachable") {
		t.Errorf("stoker cluster over TLS should list both nodes, each reachable by the other:\n%s", out)
	}
	if out, err := stokerCmd(append([]string{"stats", "--server", b.grpc}, tlsArgs(trainer)...)...); err != nil || !strings.Contains(out, "served") {
		t.Errorf("stoker stats over TLS: %v\n%s", err, out)
	}
	out, err = stokerCmd("stats", "--server", a.grpc)
	if err == nil || !strings.Contains(out, "requires TLS") {
		t.Errorf("stoker stats without TLS: want an error saying TLS is required, got %v:\n%s", err, out)
	}
	if out, err := stokerCmd("stats", "--server", "unix://"+sock); err != nil {
		t.Errorf("stoker stats on the unix socket, which stays plaintext: %v\n%s", err, out)
	}

	// Rotation: b's certificate and key replaced; the next connection
	// sees the new certificate, and the nodes keep reading each other.
	before := tlstest.ServerSerial(t, b.grpc, trainer.Load(t).ClientConfig())
	rotated := ca.Issue(t, "node b, rotated", "127.0.0.1")
	tlstest.WriteFile(t, bFiles.Key, rotated.KeyPEM)
	tlstest.WriteFile(t, bFiles.Cert, rotated.CertPEM)
	if got := tlstest.ServerSerial(t, b.grpc, trainer.Load(t).ClientConfig()); got.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation node b presents serial %v, want the new %v (was %v)", got, rotated.Cert.SerialNumber, before)
	}
	epoch.Epoch = 2
	e.checkEpoch(t, readAll(t, dialTLS(t, b, trainer), epoch))
	if !strings.Contains(b.logs(), "TLS files reloaded") {
		t.Errorf("node b does not log the reload:\n%s", b.logs())
	}
}

// A node whose certificate the job's CA did not sign joins the gossip but
// cannot read from its peer: the peer refuses the handshake, the node
// reads those shards from S3 (its fallback counter says how many), and a
// trainer still gets every byte.
func TestClusterTLSNodeWithoutValidCertFallsBack(t *testing.T) {
	e := newClusterEnv(t)
	dir := t.TempDir()
	ca, rogue := tlstest.NewCA(t, "job CA"), tlstest.NewCA(t, "not the job's CA")
	aFiles := tlstest.Write(t, dir, "a", ca.Issue(t, "node a", "127.0.0.1"), ca)
	cFiles := tlstest.Write(t, dir, "c", rogue.Issue(t, "node c", "127.0.0.1"), ca) // trusts the job's CA, signed by another
	trainer := tlstest.Write(t, dir, "trainer", ca.Issue(t, "trainer"), ca, rogue)  // trusts both, to reach c

	a := startNode(t, e.s3env, "a", "", tlsArgs(aFiles)...)
	c := startNode(t, e.s3env, "c", a.gossip, tlsArgs(cFiles)...)
	useTLS(t, a, trainer)
	useTLS(t, c, trainer)
	waitAlive(t, []*clusterNode{a, c}, "a", "c")
	ownedByA := 0
	for _, o := range c.members(t, e.url).GetOwners() {
		if o == "a" {
			ownedByA++
		}
	}
	if ownedByA == 0 {
		t.Fatal("node a owns no shard: the test would prove nothing")
	}

	e.checkEpoch(t, readAll(t, dialTLS(t, c, trainer), stoker.Epoch{URL: e.url, Seed: 5, BatchSize: 8}))
	reads, fallbacks := c.metric(t, "stoker_peer_reads_total"), c.metric(t, "stoker_peer_fallbacks_total")
	t.Logf("node c: %v reads from its peer, %v fallbacks to S3; node a owns %d shards", reads, fallbacks, ownedByA)
	// Every shard node a owns is a fallback while node c sees a alive; a
	// moment in which c's gossip suspects a (a loaded machine) makes c the
	// owner of some of them, read from S3 with no fallback. So the count
	// is at least one, not one per shard a owns; the S3 GETs below show
	// that each shard was still read.
	if reads != 0 || fallbacks < 1 {
		t.Errorf("node c read %v shards from its peer with %v fallbacks: want none read and fallbacks for the shards node a owns (%d)", reads, fallbacks, ownedByA)
	}
	if served := a.metric(t, "stoker_peer_served_total"); served != 0 {
		t.Errorf("node a served %v shards to a node its CA did not sign", served)
	}
	gets := e.proxy.takeCounts()
	for _, sh := range e.shards {
		if gets[bucket+"/"+sh.name] == 0 {
			t.Errorf("%s: no S3 GET, yet node c can read it from nowhere else", sh.name)
		}
	}
	// Both logs say why.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !strings.Contains(a.logs(), "certificate signed by unknown authority") || !strings.Contains(c.logs(), "reading storage") {
		if ctx.Err() != nil {
			t.Fatalf("the logs do not say why node c reads from S3:\nnode a:\n%s\nnode c:\n%s", a.logs(), c.logs())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	for _, l := range strings.Split(c.logs(), "\n") {
		if strings.Contains(l, "reading storage") {
			t.Logf("node c: %s", l)
			break
		}
	}
}
