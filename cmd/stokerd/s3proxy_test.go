package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// objectGet is one GET of an object as the S3 server saw it.
type objectGet struct {
	key   string // bucket/key
	rng   string // the Range header, "" for the whole object
	bytes int64  // bytes answered
}

// s3Proxy is a reverse proxy in front of the S3 server that records every
// object GET (as S3 would bill it) with its Range header and the bytes sent
// back. Path style: /bucket/key; a GET of a bucket alone is a LIST and is
// not recorded.
type s3Proxy struct {
	srv  *httptest.Server
	mu   sync.Mutex // guards gets
	gets []objectGet
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func startS3Proxy(t testing.TB, endpoint string) *s3Proxy {
	t.Helper()
	return startS3ProxyOn(t, endpoint, "127.0.0.1:0")
}

// startS3ProxyOn is startS3Proxy listening on addr.
func startS3ProxyOn(t testing.TB, endpoint, addr string) *s3Proxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header the client signed
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
		if r.Method != http.MethodGet || len(parts) != 2 || parts[1] == "" {
			rp.ServeHTTP(w, r)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		rp.ServeHTTP(cw, r)
		p.mu.Lock()
		p.gets = append(p.gets, objectGet{key: parts[0] + "/" + parts[1], rng: r.Header.Get("Range"), bytes: cw.n})
		p.mu.Unlock()
	}))
	p.srv.Listener.Close()
	p.srv.Listener = lis
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// env returns the S3 variables with the endpoint pointed at the proxy.
func (p *s3Proxy) env(s3env []string) []string {
	var out []string
	for _, kv := range s3env {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_S3=") {
			kv = "AWS_ENDPOINT_URL_S3=" + p.srv.URL
		}
		out = append(out, kv)
	}
	return out
}

// take returns the GETs so far and starts afresh.
func (p *s3Proxy) take() []objectGet {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.gets
	p.gets = nil
	return g
}

// takeCounts returns the GETs so far per object and starts afresh.
func (p *s3Proxy) takeCounts() map[string]int {
	counts := map[string]int{}
	for _, g := range p.take() {
		counts[g.key]++
	}
	return counts
}
