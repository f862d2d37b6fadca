package prefetch_test

import (
	"context"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
)

// hangBound is how long a test waits for a call that must not hang before
// failing it: a generous multiple of the timeouts the calls run under,
// not a measure of speed.
const hangBound = time.Minute

// newS3Source returns an S3Source for endpoint with fast retries.
func newS3Source(t *testing.T, endpoint string, srv *s3test.Server, attempts int) *s3.Source {
	t.Helper()
	return newIdleSource(t, endpoint, srv, attempts, 0)
}

// newIdleSource is newS3Source with a read idle timeout (0: the default).
func newIdleSource(t *testing.T, endpoint string, srv *s3test.Server, attempts int, idle time.Duration) *s3.Source {
	t.Helper()
	cfg := s3.DefaultConfig()
	cfg.Endpoint = endpoint
	cfg.Credentials = srv.Credentials()
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

// within runs f and returns its error, failing the test if f has not
// returned after hangBound.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangBound):
		t.Fatalf("%s: still blocked after %v", what, hangBound)
		return nil
	}
}
