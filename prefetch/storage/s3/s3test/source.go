package s3test

import (
	"context"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage/s3"
)

// Source returns an s3.Source for endpoint (the server's own, or a
// proxy's in front of it) with the server's credentials, attempts tries
// per request and fast retries; idle, when above 0, is its read idle
// timeout.
func (s *Server) Source(t testing.TB, endpoint string, attempts int, idle time.Duration) *s3.Source {
	t.Helper()
	cfg := s3.DefaultConfig()
	cfg.Endpoint = endpoint
	cfg.Credentials = s.Credentials()
	cfg.MaxAttempts = attempts
	cfg.MaxBackoff = 20 * time.Millisecond
	if idle > 0 {
		cfg.ReadIdleTimeout = idle
	}
	src, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// HangBound is how long Within waits for a call that must not hang: a
// generous multiple of the timeouts the calls run under, not a measure
// of speed.
const HangBound = time.Minute

// Within runs f and returns its error, failing the test if f has not
// returned after HangBound.
func Within(t testing.TB, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(HangBound):
		t.Fatalf("%s: still blocked after %v", what, HangBound)
		return nil
	}
}
