package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles/tlstest"
)

// Nodes started with --auth-token-file send their token to each other:
// node a reads b's shards from b (no fallback to S3) and hands b its part
// of a hint, while a client without the token is refused by both.
func TestClusterNodesSendTheirToken(t *testing.T) {
	e := newClusterEnv(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("cluster-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--auth-token-file", tokenFile, "--metrics-without-auth"}
	a := startNode(t, e.s3env, "a", "", append(auth, "--memory-cache", "64KiB", "--disk-cache", "0")...)
	b := startNode(t, e.s3env, "b", a.gossip, auth...)
	useToken(t, a, "cluster-token")
	useToken(t, b, "cluster-token")
	waitAlive(t, []*clusterNode{a, b}, "a", "b")

	cmd := exec.Command(filepath.Join(binDir, "stoker"), "prefetch", "--server", a.grpc, e.url, "--seed", "3", "--wait", "--interval", "50ms")
	cmd.Env = append(os.Environ(), "STOKER_TOKEN=cluster-token")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "b ") {
		t.Fatalf("stoker prefetch across the nodes: %v\n%s", err, out)
	}
	e.checkEpoch(t, readAll(t, dialRetrying(t, a.grpc, stoker.WithToken("cluster-token")), stoker.Epoch{URL: e.url, Seed: 3, BatchSize: 8}))
	if reads, falls := a.metric(t, "stoker_peer_reads_total"), a.metric(t, "stoker_peer_fallbacks_total"); reads == 0 || falls != 0 {
		t.Errorf("node a: %v shards read from b, %v fallbacks to S3; want some and none", reads, falls)
	}
	c, err := stoker.Dial(b.grpc, stoker.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := firstErr(c, stoker.Epoch{URL: e.url, BatchSize: 8}); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("a client without the token on node b: %v", err)
	}
}

// useToken makes the test's connection to n send token.
func useToken(t *testing.T, n *clusterNode, token string) {
	t.Helper()
	conn, err := grpc.NewClient(n.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerToken(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.conn = conn
}

// bearerToken is gRPC per-call credentials with a fixed token.
type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerToken) RequireTransportSecurity() bool { return false }

// --http-tls serves the HTTP API over TLS with the gRPC port's
// certificate; plain HTTP gets no answer from it.
func TestHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "job CA")
	files := tlstest.Write(t, dir, "stokerd", ca.Issue(t, "stokerd", "127.0.0.1"), ca)
	srv := startStokerd(t, nil, t.TempDir(), "--tls-cert", files.Cert, "--tls-key", files.Key, "--http-tls")
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if code, body := httpDoWith(t, client, "GET", "https://"+srv.web+"/metrics", "", "", ""); code != 200 || !strings.Contains(body, "stoker_samples_served_total") {
		t.Errorf("GET https://…/metrics: %d %.200s", code, body)
	}
	if r, err := http.Get("http://" + srv.web + "/healthz"); err == nil && r.StatusCode == 200 {
		r.Body.Close()
		t.Error("plain HTTP was answered on the --http-tls address")
	}
	if err := exec.Command(filepath.Join(binDir, "stokerd"), "--http-tls", "--listen", freeAddr(t), "--http", freeAddr(t), "--cache-dir", t.TempDir()).Run(); err == nil {
		t.Error("stokerd --http-tls without a certificate started")
	}
}
