package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// panicky is a health service whose every method panics, standing for a
// handler with a bug.
type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	var m map[string]int
	m["boom"]++ //nolint:staticcheck // SA5000 is the point: a nil map write, a runtime panic as a bug would make
	return nil, nil
}

func (panicky) Watch(*healthpb.HealthCheckRequest, healthpb.Health_WatchServer) error {
	panic("stream handler bug")
}

// A panic in a gRPC handler, unary or stream, is answered Internal, logged
// with its stack and counted, and the server goes on serving; an HTTP
// handler's panic is answered 500.
func TestHandlerPanicsAreRecovered(t *testing.T) {
	srv, logs, addr := serveLogged(t, func(c *Config) { c.Cache.MemoryBytes = 16 << 20 }, func(srv *Server) {
		healthpb.RegisterHealthServer(srv.grpc, panicky{})
	})
	conn := dialRaw(t, addr)
	ctx := context.Background()
	health := healthpb.NewHealthClient(conn)

	_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "boom") {
		t.Errorf("unary panic: %v, want Internal without the panic's text", err)
	}
	w, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Errorf("stream panic: %v, want Internal", err)
	}
	if _, err := stokerv1.NewLoaderClient(conn).Stats(ctx, &stokerv1.StatsRequest{}); err != nil {
		t.Errorf("Stats after the panics: %v", err)
	}
	if got := counterValue(t, srv.security.panics); got != 2 {
		t.Errorf("stoker_handler_panics_total = %v, want 2", got)
	}
	for _, want := range []string{"assignment to entry in nil map", "stream handler bug", "recover_test.go", "/grpc.health.v1.Health/Watch"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}

	h := srv.recoverHTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("http handler bug") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/prefetch/x", nil))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "http handler bug") {
		t.Errorf("HTTP panic: %d %s, want 500 without the panic's text", rec.Code, rec.Body)
	}
}

// counterValue reads a counter's value.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// serveLogged serves a server over file:// sources whose log the test
// reads; register adds services before it serves.
func serveLogged(t *testing.T, mutate func(*Config), register func(*Server)) (*Server, *syncBuffer, string) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.Cache.Dir = filepath.Join(t.TempDir(), "cache")
	cfg.Cache.DiskBytes = 0
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if register != nil {
		register(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv, logs, lis.Addr().String()
}
