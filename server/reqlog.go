package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Every failed request is logged once, here, with its code, the dataset
// it named (when it named one), the client's address and the method, and
// counted in stoker_requests_failed_total{api,method,code}. A client that
// cancels its own call (Canceled) is logged at debug level: that is how a
// trainer ends a stream early. Refusals of the client's request
// (InvalidArgument, NotFound, PermissionDenied, Unauthenticated,
// ResourceExhausted, FailedPrecondition, HTTP 4xx) are warnings; the
// server's own failures (Internal, DataLoss, Unavailable, HTTP 5xx) are
// errors. A panic is logged by the recover guard instead, with its stack.

// failLevel is the level a failed request with code c is logged at.
func failLevel(c codes.Code) slog.Level {
	switch c {
	case codes.Canceled:
		return slog.LevelDebug
	case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.ResourceExhausted, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// datasetOf is the dataset a request message names, or "".
func datasetOf(msg any) string {
	if m, ok := msg.(interface{ GetUrl() string }); ok {
		return m.GetUrl()
	}
	return ""
}

// clientOf is the address of the call's client.
func clientOf(ctx context.Context) string {
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// logFailed logs and counts a failed gRPC call.
func (s *Server) logFailed(ctx context.Context, method, dataset string, start time.Time, err error) {
	if err == nil {
		return
	}
	st, _ := status.FromError(toStatus(err))
	s.hist.failed.WithLabelValues("grpc", method, st.Code().String()).Inc()
	s.log.Log(ctx, failLevel(st.Code()), "request failed", "api", "grpc", "method", method, "code", st.Code().String(),
		"dataset", dataset, "client", clientOf(ctx), "seconds", time.Since(start).Seconds(), "err", st.Message())
}

func (s *Server) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.logFailed(ctx, info.FullMethod, datasetOf(req), start, err)
	return resp, err
}

func (s *Server) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	rs := &recvStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), startKey{}, start)}
	err := handler(srv, rs)
	s.logFailed(ss.Context(), info.FullMethod, rs.dataset(), start, err)
	return err
}

// recvStream remembers the dataset the stream's first request named.
type recvStream struct {
	grpc.ServerStream
	ctx context.Context // the stream's, with the call's arrival (callStart)
	mu  sync.Mutex      // guards url
	url string
}

func (r *recvStream) Context() context.Context { return r.ctx }

func (r *recvStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if err == nil {
		r.mu.Lock()
		if r.url == "" {
			r.url = datasetOf(m)
		}
		r.mu.Unlock()
	}
	return err
}

func (r *recvStream) dataset() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.url
}

// httpRequestKey carries a request's *httpNote in its context.
type httpRequestKey struct{}

// httpNote is what a handler tells the failure log of its request.
type httpNote struct {
	mu      sync.Mutex // guards dataset
	dataset string
}

// noteDataset records the dataset an HTTP request names, for its failure
// log line.
func noteDataset(ctx context.Context, url string) {
	if n, ok := ctx.Value(httpRequestKey{}).(*httpNote); ok {
		n.mu.Lock()
		n.dataset = url
		n.mu.Unlock()
	}
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets a handler stream through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// logHTTP logs and counts every HTTP request answered 400 or above, by the
// route it matched (bounded: the mux's patterns).
func (s *Server) logHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &httpNote{}
		r = r.WithContext(context.WithValue(r.Context(), httpRequestKey{}, note))
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code < 400 {
			return
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		level := slog.LevelWarn
		if sw.code >= 500 {
			level = slog.LevelError
		}
		note.mu.Lock()
		dataset := note.dataset
		note.mu.Unlock()
		s.hist.failed.WithLabelValues("http", route, strconv.Itoa(sw.code)).Inc()
		s.log.Log(r.Context(), level, "request failed", "api", "http", "method", r.Method+" "+r.URL.Path, "route", route,
			"code", sw.code, "dataset", dataset, "client", r.RemoteAddr, "seconds", time.Since(start).Seconds())
	})
}
