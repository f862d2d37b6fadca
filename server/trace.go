package server

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Tracing of batch streams (Config.Tracer; stokerd --otlp-endpoint).
// A stream is one span, "stoker.stream", from the call's arrival to its
// end, with a child "stoker.open" (the dataset opened, the epoch planned,
// its first window counted) and a child "stoker.step" per step, itself
// made of "stoker.fetch" (waiting for and gathering the samples) and
// "stoker.send" (handing them to gRPC or shared memory). An epoch has
// many thousands of steps, so a stream records its first traceSteps steps
// and, after them, only steps slower than slowStep: the spans are made
// when the step has ended, dated with its times.
const (
	traceSteps = 16
	slowStep   = 100 * time.Millisecond
)

// startKey carries the time a call arrived (set by logStream).
type startKey struct{}

// callStart is when the call of ctx arrived, or now.
func callStart(ctx context.Context) time.Time {
	if t, ok := ctx.Value(startKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

// streamTrace is a stream's spans; nil when tracing is off.
type streamTrace struct {
	tracer trace.Tracer
	ctx    context.Context // holds the stream's span
	span   trace.Span
	opened bool      // the open span has ended
	start  time.Time // the call's arrival
}

func (s *Server) traceStream(ctx context.Context, t *streamTracker) *streamTrace {
	if s.cfg.Tracer == nil {
		return nil
	}
	start := callStart(ctx)
	ctx, span := s.cfg.Tracer.Start(ctx, "stoker.stream", trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("stoker.dataset", t.url), attribute.Int64("stoker.epoch", int64(t.epoch)),
			attribute.Int("stoker.rank", int(t.rank)), attribute.Int("stoker.world_size", int(t.world)),
			attribute.Int("stoker.batch_size", int(t.batch)), attribute.Bool("stoker.shm", t.shm), attribute.String("client.address", t.client)))
	return &streamTrace{tracer: s.cfg.Tracer, ctx: ctx, span: span, start: start}
}

// step records step n's spans: begun at begin, its samples fetched at
// fetched (zero: not told), sent at sent.
func (st *streamTrace) step(n uint64, begin, fetched, sent time.Time, samples, bytes, after int) {
	if st == nil {
		return
	}
	if !st.opened {
		st.opened = true
		_, open := st.tracer.Start(st.ctx, "stoker.open", trace.WithTimestamp(st.start))
		open.End(trace.WithTimestamp(begin))
	}
	if n >= traceSteps && sent.Sub(begin) < slowStep {
		return
	}
	ctx, span := st.tracer.Start(st.ctx, "stoker.step", trace.WithTimestamp(begin), trace.WithAttributes(
		attribute.Int64("stoker.step", int64(n)), attribute.Int("stoker.samples", samples), attribute.Int("stoker.bytes", bytes),
		attribute.Int("stoker.position", after)))
	if !fetched.IsZero() {
		_, f := st.tracer.Start(ctx, "stoker.fetch", trace.WithTimestamp(begin))
		f.End(trace.WithTimestamp(fetched))
		_, s := st.tracer.Start(ctx, "stoker.send", trace.WithTimestamp(fetched))
		s.End(trace.WithTimestamp(sent))
	}
	span.End(trace.WithTimestamp(sent))
}

// end ends the stream's span with its totals.
func (st *streamTrace) end(t *streamTracker) {
	if st == nil {
		return
	}
	st.span.SetAttributes(attribute.Int64("stoker.samples_sent", int64(t.samples.Load())), attribute.Int64("stoker.steps", int64(t.steps.Load())),
		attribute.Float64("stoker.stall_seconds", t.ps.Stall.Seconds()))
	st.span.End()
}
