package server

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stoker-data/stoker/prefetch/wds"
)

// With a tracer, a stream is one span holding an open span and a span per
// step, each made of a fetch and a send that follow one another inside it.
func TestStreamTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(t.Context()) }()
	h := newHarness(t, wds.Synthetic{Shards: 4, PerShard: 8, SampleSize: 1024, Seed: 1}, func(c *Config) { c.Tracer = tp.Tracer("stoker-test") })
	if _, steps := readEpoch(t, h.client, h.url, 4); steps != 8 {
		t.Fatalf("%d steps, want 8", steps)
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	streams := byName["stoker.stream"]
	if len(streams) != 1 || len(byName["stoker.open"]) != 1 || len(byName["stoker.step"]) != 8 || len(byName["stoker.fetch"]) != 8 || len(byName["stoker.send"]) != 8 {
		t.Fatalf("spans: %d stream, %d open, %d step, %d fetch, %d send; want 1, 1, 8, 8, 8",
			len(streams), len(byName["stoker.open"]), len(byName["stoker.step"]), len(byName["stoker.fetch"]), len(byName["stoker.send"]))
	}
	stream := streams[0]
	attrs := map[string]string{}
	for _, a := range stream.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["stoker.dataset"] != h.url || attrs["stoker.samples_sent"] != "32" || attrs["stoker.steps"] != "8" {
		t.Errorf("stream span attributes %v", attrs)
	}
	steps := map[[8]byte]sdktrace.ReadOnlySpan{}
	for _, s := range byName["stoker.step"] {
		if s.Parent().SpanID() != stream.SpanContext().SpanID() {
			t.Errorf("a step span's parent is not the stream's")
		}
		if s.StartTime().Before(stream.StartTime()) || s.EndTime().After(stream.EndTime()) {
			t.Errorf("a step span lies outside the stream's")
		}
		steps[s.SpanContext().SpanID()] = s
	}
	open := byName["stoker.open"][0]
	if open.Parent().SpanID() != stream.SpanContext().SpanID() || !open.StartTime().Equal(stream.StartTime()) {
		t.Errorf("the open span is not the start of the stream's")
	}
	for _, f := range byName["stoker.fetch"] {
		step, ok := steps[f.Parent().SpanID()]
		if !ok || !f.StartTime().Equal(step.StartTime()) || f.EndTime().After(step.EndTime()) {
			t.Errorf("a fetch span is not the start of its step")
		}
	}
	for _, s := range byName["stoker.send"] {
		step, ok := steps[s.Parent().SpanID()]
		if !ok || !s.EndTime().Equal(step.EndTime()) {
			t.Errorf("a send span is not the end of its step")
		}
	}
}

// A stream records its first steps and then only slow ones.
func TestStreamTraceBoundsSteps(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(t.Context()) }()
	h := newHarness(t, wds.Synthetic{Shards: 4, PerShard: 16, SampleSize: 256, Seed: 1}, func(c *Config) { c.Tracer = tp.Tracer("stoker-test") })
	if _, steps := readEpoch(t, h.client, h.url, 1); steps != 64 {
		t.Fatalf("%d steps, want 64", steps)
	}
	n := 0
	for _, s := range rec.Ended() {
		if s.Name() != "stoker.step" {
			continue
		}
		n++
		var step int64 = -1
		for _, a := range s.Attributes() {
			if a.Key == "stoker.step" {
				step = a.Value.AsInt64()
			}
		}
		if d := s.EndTime().Sub(s.StartTime()); step >= traceSteps && d < slowStep {
			t.Errorf("step %d traced, taking %v: want only the first %d steps and those over %v", step, d, traceSteps, slowStep)
		}
	}
	if n < traceSteps {
		t.Errorf("%d steps traced, want at least the first %d", n, traceSteps)
	}
}
