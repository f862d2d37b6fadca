package s3

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// statError is s3Error for a HeadObject. A HEAD's 404 has no body, so it
// cannot tell a missing object from a missing bucket: on a 404 the bucket
// is asked for (HeadBucket, on this error path only), and a bucket that
// is not there is said to be missing, naming it.
func (s *Source) statError(ctx context.Context, op, url, bucket string, err error) error {
	wrapped := s3Error(op, url, bucket, err)
	if !errors.Is(wrapped, storage.ErrNotFound) || errors.As(wrapped, new(*missingBucket)) {
		return wrapped
	}
	_, berr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
	if berr == nil || !errors.Is(s3Error(op, url, bucket, berr), storage.ErrNotFound) {
		return wrapped // the bucket is there (or cannot be asked about): the object is missing
	}
	return &storage.Error{Op: op, Object: url, Kind: storage.ErrNotFound, Err: &missingBucket{bucket: bucket, err: err}}
}
