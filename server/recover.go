package server

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panic in a handler must never take the process down: every gRPC call
// and HTTP request runs under a recover that logs the panic with its
// stack, counts it (stoker_handler_panics_total) and answers Internal (or
// HTTP 500). Goroutines a handler starts are not covered: what they run is
// checked before it starts (parseStreamRequest and the other wire checks).

// recoverUnary is the outermost unary interceptor.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, s.panicked(info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

// recoverStream is the outermost stream interceptor.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(info.FullMethod, r)
		}
	}()
	return handler(srv, ss)
}

// recoverHTTP runs h under a recover that answers 500. http.ErrAbortHandler
// is net/http's own way to abort a response and passes through.
func (s *Server) recoverHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, compared as net/http does
					panic(v)
				}
				writeJSONError(w, s.panicked(r.Method+" "+r.URL.Path, v))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// panicked logs a recovered panic with its stack and returns the error the
// caller gets: Internal, naming the call but not the panic's text.
func (s *Server) panicked(where string, v any) error {
	s.security.panics.Inc()
	s.log.Error("handler panicked: answered Internal, still serving", "call", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "stokerd: internal error in %s (the server logged it and goes on serving)", where)
}
