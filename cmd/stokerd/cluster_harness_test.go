package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// countingProxy is a reverse proxy in front of the S3 server that counts
// the GETs of each object, as S3 would bill them.
type countingProxy struct {
	srv  *httptest.Server
	mu   sync.Mutex     // guards gets
	gets map[string]int // "bucket/key" → GET requests
}

func startCountingProxy(t *testing.T, endpoint string) *countingProxy {
	t.Helper()
	return startCountingProxyOn(t, endpoint, "127.0.0.1:0")
}

// startCountingProxyOn is startCountingProxy listening on addr.
func startCountingProxyOn(t *testing.T, endpoint, addr string) *countingProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{gets: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header the client signed
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Path style: /bucket/key. A GET of a bucket (no key) is a LIST.
		if parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2); r.Method == http.MethodGet && len(parts) == 2 && parts[1] != "" {
			p.mu.Lock()
			p.gets[parts[0]+"/"+parts[1]]++
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	p.srv.Listener.Close()
	p.srv.Listener = lis
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// env returns the S3 variables with the endpoint pointed at the proxy.
func (p *countingProxy) env(s3env []string) []string {
	var out []string
	for _, kv := range s3env {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_S3=") {
			kv = "AWS_ENDPOINT_URL_S3=" + p.srv.URL
		}
		out = append(out, kv)
	}
	return out
}

// take returns the GET counts so far and starts counting afresh.
func (p *countingProxy) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.gets
	p.gets = map[string]int{}
	return g
}

// clusterNode is a stokerd process that is a member of a cluster.
type clusterNode struct {
	*stokerd
	name, gossip string
	conn         *grpc.ClientConn
}

// startNode starts a cluster member; join is a gossip address or empty.
func startNode(t *testing.T, env []string, name, join string, extra ...string) *clusterNode {
	t.Helper()
	gossip := freeAddr(t)
	args := append([]string{"--cluster-addr", gossip, "--node-name", name, "--zone", "zone-" + name}, extra...)
	if join != "" {
		args = append(args, "--join", join)
	}
	p := startStokerd(t, env, t.TempDir(), args...)
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &clusterNode{stokerd: p, name: name, gossip: gossip, conn: conn}
}

func (n *clusterNode) members(t *testing.T, url string) *stokerv1.MembersResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := stokerv1.NewPeerClient(n.conn).Members(ctx, &stokerv1.MembersRequest{Url: url})
	if err != nil {
		t.Fatalf("members from %s: %v", n.name, err)
	}
	return r
}

func aliveNames(r *stokerv1.MembersResponse) []string {
	var out []string
	for _, m := range r.GetMembers() {
		if m.GetState() == "alive" {
			out = append(out, m.GetName())
		}
	}
	return out
}

// waitAlive polls until every node sees exactly the given names alive.
func waitAlive(t *testing.T, nodes []*clusterNode, names ...string) {
	t.Helper()
	want := strings.Join(names, ",")
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range nodes {
		for {
			got := strings.Join(aliveNames(n.members(t, "")), ",")
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %s alive, want %s", n.name, got, want)
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}
}

// metric reads one unlabelled value from the node's /metrics.
func (n *clusterNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	r, err := http.Get("http://" + n.web + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.name, err)
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found on %s", name, n.name)
	return 0
}
