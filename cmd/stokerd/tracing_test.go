package main

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/stoker-data/stoker/clients/stoker"
)

// collector is an OTLP/gRPC trace receiver: what stokerd exports.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex // guards spans
	spans map[string]int
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans[s.GetName()]++
			}
		}
	}
	c.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// stokerd --otlp-endpoint exports a stream's spans (stream, open, steps,
// fetch, send) to an OTLP collector: all of them have arrived once the
// server has stopped on SIGTERM (it flushes them before it exits).
func TestOTLPExport(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{spans: map[string]int{}}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	e := newEnv(t)
	e.srv.restart("--otlp-endpoint", "http://"+lis.Addr().String())
	readAll(t, e.client, stoker.Epoch{URL: e.url, Seed: 1, BatchSize: 8})
	// SIGTERM: stokerd drains and flushes its spans before it exits.
	if err := e.srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-e.srv.exited
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, name := range []string{"stoker.stream", "stoker.open", "stoker.step", "stoker.fetch", "stoker.send"} {
		if col.spans[name] == 0 {
			t.Errorf("no %s span exported (got %v)\n%s", name, col.spans, e.srv.logs())
		}
	}
}
