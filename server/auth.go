package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenSource gives the bearer tokens a server accepts now. Tokens is
// called on every call and request, so it must be cheap; it must be safe
// for concurrent use. stoker.TokenFile is one: it re-reads its file when
// the file changes, and every line of the file is a token, so a new token
// can be rolled out beside the old one.
type TokenSource interface {
	Tokens() []string
}

// How to give a token, for the error a client without one gets.
const tokenHelp = "send one as \"authorization: Bearer TOKEN\" (Go: stoker.WithTokenFile or WithToken; " +
	"stoker CLI: STOKER_TOKEN or --token-file; Python: Client(token=..., token_file=...) or STOKER_TOKEN)"

// Every gRPC method needs a token when auth is on, the Peer service's
// too: a node reads its token file at start, before it serves or calls
// anything, so no call happens before a node can authenticate. What nodes
// do before that (gossip, which --cluster-key-file encrypts and
// authenticates, and the TLS handshake) is not gRPC.

// checkToken reports whether authorization (an "authorization" header's
// value) carries a token src accepts. Tokens are compared as SHA-256
// digests in constant time, every accepted token each time, so neither
// the time taken nor an early exit tells how much of a guess was right.
func checkToken(src TokenSource, authorization string) bool {
	scheme, tok, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for _, want := range src.Tokens() {
		if want == "" {
			continue
		}
		w := sha256.Sum256([]byte(want))
		match |= subtle.ConstantTimeCompare(got[:], w[:])
	}
	return match == 1
}

// authError is the status of a call without an accepted token.
func authError(authorization string) error {
	if authorization == "" {
		return status.Error(codes.Unauthenticated, "stokerd requires a bearer token and this call has none: "+tokenHelp)
	}
	return status.Error(codes.Unauthenticated, "stokerd does not accept this call's bearer token (wrong, or rotated away): "+tokenHelp)
}

// authorize checks the token of a gRPC call; nil when auth is off.
func (s *Server) authorize(ctx context.Context) error {
	src := s.cfg.Auth
	if src == nil {
		return nil
	}
	var h string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			h = v[0]
		}
	}
	if checkToken(src, h) {
		return nil
	}
	s.security.authFailures.WithLabelValues("grpc").Inc()
	return authError(h)
}

func (s *Server) authUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.authorize(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// guardHTTP wraps the HTTP API: a POST must carry JSON (a browser's
// cross-site form post cannot set that content type without a CORS
// preflight, which this server never answers), and with auth on every
// path but /healthz (and /metrics with MetricsWithoutAuth) needs a token,
// 401 otherwise.
func (s *Server) guardHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open := r.URL.Path == "/healthz" || (r.URL.Path == "/metrics" && s.cfg.MetricsWithoutAuth)
		if src := s.cfg.Auth; src != nil && !open {
			if authz := httpAuthorization(r); !checkToken(src, authz) {
				s.security.authFailures.WithLabelValues("http").Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="stokerd"`)
				w.Header().Add("WWW-Authenticate", `Basic realm="stokerd", charset="UTF-8"`) // a browser asks for the token (as password) for the status page
				writeJSONError(w, authError(authz))
				return
			}
		}
		if r.Method == http.MethodPost {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnsupportedMediaType)
				_, _ = w.Write([]byte(`{"error": "POST bodies must be JSON: send Content-Type: application/json"}` + "\n"))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
