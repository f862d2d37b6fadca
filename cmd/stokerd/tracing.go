package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// startTracing exports the batch streams' traces with OTLP over gRPC to
// endpoint, a URL (http://collector:4317 in plaintext, https://… with
// TLS); the standard OTEL_EXPORTER_OTLP_* variables set the rest
// (headers, certificates, timeouts). Empty: tracing off (nil tracer). The
// exporter connects lazily: a collector that is down costs dropped spans,
// never a failed stream. stop flushes what is pending, for up to 5 s.
func startTracing(endpoint string) (tracer trace.Tracer, stop func(), err error) {
	if endpoint == "" {
		return nil, func() {}, nil
	}
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("--otlp-endpoint %q: %w", endpoint, err)
	}
	host, _ := os.Hostname()
	res := sdkresource.NewSchemaless(attribute.String("service.name", "stokerd"), attribute.String("host.name", host))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp.Tracer("github.com/stoker-data/stoker/server"), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}
