package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// tokens is a TokenSource whose tokens a test may change.
type tokens struct {
	mu   sync.Mutex // guards list
	list []string
}

func (t *tokens) Tokens() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.list
}

func (t *tokens) set(list ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.list = list
}

func bearer(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// With a TokenSource, every gRPC call of both services needs one of its
// tokens, checked again at each call (a rotated token is refused at
// once); refusals are Unauthenticated and counted.
func TestGRPCAuth(t *testing.T) {
	toks := &tokens{list: []string{"old-token", "new-token"}}
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 4, SampleSize: 64, Seed: 1}, func(c *Config) { c.Auth = toks })
	conn := dialRaw(t, h.addr)
	loader, peer := stokerv1.NewLoaderClient(conn), stokerv1.NewPeerClient(conn)
	calls := map[string]func(ctx context.Context) error{
		"Stats": func(ctx context.Context) error { _, err := loader.Stats(ctx, &stokerv1.StatsRequest{}); return err },
		"OpenDataset": func(ctx context.Context) error {
			_, err := loader.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: h.url})
			return err
		},
		"StreamBatches": func(ctx context.Context) error {
			return streamErr(ctx, loader, &stokerv1.StreamBatchesRequest{Url: h.url, BatchSize: 4})
		},
		"Members": func(ctx context.Context) error { _, err := peer.Members(ctx, &stokerv1.MembersRequest{}); return err },
		"ReadShard": func(ctx context.Context) error {
			st, err := peer.ReadShard(ctx, &stokerv1.ReadShardRequest{Object: h.url + "shard-000000.tar"})
			if err == nil {
				_, err = st.Recv()
			}
			if status.Code(err) == codes.NotFound || status.Code(err) == codes.InvalidArgument {
				return nil // past auth
			}
			return err
		},
	}
	refused := 0
	for name, call := range calls {
		for what, ctx := range map[string]context.Context{"no token": context.Background(), "a wrong token": bearer("guess"), "an empty token": bearer("")} {
			err := call(ctx)
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "STOKER_TOKEN") {
				t.Errorf("%s with %s: %v, want Unauthenticated saying how to send a token", name, what, err)
			}
			refused++
		}
		for _, tok := range []string{"old-token", "new-token"} {
			if err := call(bearer(tok)); err != nil {
				t.Errorf("%s with token %s: %v", name, tok, err)
			}
		}
	}
	if got := counterValue(t, h.srv.security.authFailures.WithLabelValues("grpc")); got != float64(refused) {
		t.Errorf("stoker_auth_failures_total{api=grpc} = %v, want %d", got, refused)
	}
	toks.set("new-token")
	if err := calls["Stats"](bearer("old-token")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a token rotated away: %v, want Unauthenticated", err)
	}
}

// The HTTP API needs a token on every path but /healthz (and /metrics when
// opened by its own setting), answers 401 without, and takes only JSON
// bodies: a cross-site form post is refused even with auth off.
func TestHTTPAuthAndContentType(t *testing.T) {
	toks := &tokens{list: []string{"s3cret"}}
	h := newHarness(t, wds.Synthetic{Shards: 2, PerShard: 4, SampleSize: 64, Seed: 1}, func(c *Config) { c.Auth = toks })
	web := httptest.NewServer(h.srv.HTTPHandler())
	defer web.Close()
	do := func(method, path, token, ctype, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, web.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	hint := `{"url": "` + h.url + `", "epochs": [0]}`
	for _, tc := range []struct {
		method, path, token, ctype, body string
		want                             int
	}{
		{"GET", "/healthz", "", "", "", 200},
		{"GET", "/metrics", "", "", "", 401},
		{"GET", "/metrics", "wrong", "", "", 401},
		{"GET", "/metrics", "s3cret", "", "", 200},
		{"POST", "/v1/prefetch", "", "application/json", hint, 401},
		{"POST", "/v1/prefetch", "s3cret", "text/plain", hint, 415},
		{"POST", "/v1/prefetch", "s3cret", "application/x-www-form-urlencoded", "url=x", 415},
		{"POST", "/v1/prefetch", "s3cret", "", hint, 415},
		{"POST", "/v1/prefetch", "s3cret", "application/json; charset=utf-8", hint, 200},
		{"GET", "/v1/prefetch/none", "", "", "", 401},
		{"GET", "/v1/prefetch/none", "s3cret", "", "", 404},
	} {
		if got, body := do(tc.method, tc.path, tc.token, tc.ctype, tc.body); got != tc.want {
			t.Errorf("%s %s (token %q, %s): %d %s, want %d", tc.method, tc.path, tc.token, tc.ctype, got, body, tc.want)
		}
	}
	if got := counterValue(t, h.srv.security.authFailures.WithLabelValues("http")); got != 4 {
		t.Errorf("stoker_auth_failures_total{api=http} = %v, want 4", got)
	}
	_, metrics := do("GET", "/metrics", "s3cret", "", "")
	if !strings.Contains(metrics, `stoker_auth_failures_total{api="http"} 4`) {
		t.Errorf("/metrics does not show the failures:\n%s", metrics)
	}

	open := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 1, SampleSize: 8, Seed: 1}, func(c *Config) { c.Auth = toks; c.MetricsWithoutAuth = true })
	web2 := httptest.NewServer(open.srv.HTTPHandler())
	defer web2.Close()
	if r, err := http.Get(web2.URL + "/metrics"); err != nil || r.StatusCode != 200 {
		t.Errorf("/metrics with MetricsWithoutAuth: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	noAuth := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 1, SampleSize: 8, Seed: 1}, nil)
	web3 := httptest.NewServer(noAuth.srv.HTTPHandler())
	defer web3.Close()
	if r, err := http.Post(web3.URL+"/v1/prefetch", "text/plain", strings.NewReader(hint)); err != nil || r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a text/plain POST with auth off: %v %v, want 415", r, err)
	} else {
		r.Body.Close()
	}
}
