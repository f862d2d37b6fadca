package dataset_test

import (
	"context"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
)

// newS3Source returns an S3 Source for endpoint with fast retries.
func newS3Source(t *testing.T, endpoint string, srv *s3test.Server, attempts int) *s3.Source {
	t.Helper()
	cfg := s3.DefaultConfig()
	cfg.Endpoint = endpoint
	cfg.Credentials = srv.Credentials()
	cfg.MaxAttempts = attempts
	cfg.MaxBackoff = 20 * time.Millisecond
	src, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}
