package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// s3Scheme is the URL prefix of S3 objects: s3://bucket/key.
const s3Scheme = "s3://"

// s3Split splits an s3://bucket/key URL; key may be empty (a bucket or a
// prefix). The key is taken as is, not percent-decoded.
func s3Split(op, url string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(url, s3Scheme)
	if !ok {
		return "", "", &storage.Error{Op: op, Object: url, Kind: storage.ErrBadURL, Err: errors.New("want an s3://bucket/key URL")}
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", &storage.Error{Op: op, Object: url, Kind: storage.ErrBadURL, Err: errors.New("no bucket: want s3://bucket/key")}
	}
	return bucket, key, nil
}

// s3Object splits the URL of one object: the key must name an object, not
// a prefix.
func s3Object(op, url string) (bucket, key string, err error) {
	bucket, key, err = s3Split(op, url)
	if err != nil {
		return "", "", err
	}
	if key == "" || strings.HasSuffix(key, "/") {
		return "", "", &storage.Error{Op: op, Object: url, Kind: storage.ErrBadURL, Err: errors.New("no object key: want s3://bucket/key")}
	}
	return bucket, key, nil
}

// s3CodeKinds maps S3 API error codes to kinds of error.
var s3CodeKinds = map[string]error{
	"NoSuchBucket":          storage.ErrNotFound,
	"NoSuchKey":             storage.ErrNotFound,
	"NotFound":              storage.ErrNotFound, // HEAD has no body, so no better code
	"AccessDenied":          storage.ErrPermission,
	"AllAccessDisabled":     storage.ErrPermission,
	"AccountProblem":        storage.ErrPermission,
	"InvalidAccessKeyId":    storage.ErrPermission,
	"SignatureDoesNotMatch": storage.ErrPermission,
	"InvalidToken":          storage.ErrPermission,
	"ExpiredToken":          storage.ErrPermission,
	"TokenRefreshRequired":  storage.ErrPermission,
	"XAdminUserNotFound":    storage.ErrPermission, // versitygw: unknown access key, as a 404
	"PreconditionFailed":    storage.ErrChanged,
	"InvalidRange":          storage.ErrCorrupt, // a range past the object's end
	"InvalidBucketName":     storage.ErrBadURL,
	"KeyTooLongError":       storage.ErrBadURL,
}

// s3StatusKind maps an HTTP status to a kind of error, for responses
// whose error code is not in s3CodeKinds.
func s3StatusKind(status int) error {
	switch status {
	case http.StatusNotFound:
		return storage.ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return storage.ErrPermission
	case http.StatusPreconditionFailed:
		return storage.ErrChanged
	case http.StatusRequestedRangeNotSatisfiable:
		return storage.ErrCorrupt
	}
	return storage.ErrUnavailable // 5xx, throttling, anything else the server said
}

// s3Error wraps an SDK error once as an *Error, branching on the API error
// code, then the HTTP status, with errors.As. Anything without a response
// (refused or reset connections, timeouts, a cancelled ctx) is
// ErrUnavailable. A missing bucket says so, naming the bucket (a
// missingBucket cause, without the SDK's request and host IDs). An *Error
// passes as it is.
func s3Error(op, url, bucket string, err error) error {
	var e *storage.Error
	if errors.As(err, &e) {
		return err
	}
	kind := storage.ErrUnavailable
	var apiErr smithy.APIError
	var status interface{ HTTPStatusCode() int }
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	case errors.As(err, &apiErr) && s3CodeKinds[apiErr.ErrorCode()] != nil:
		kind = s3CodeKinds[apiErr.ErrorCode()]
		if apiErr.ErrorCode() == "NoSuchBucket" {
			err = &missingBucket{bucket: bucket, err: err}
		}
	case errors.As(err, &status) && status.HTTPStatusCode() > 0:
		kind = s3StatusKind(status.HTTPStatusCode())
	}
	if errors.Is(kind, storage.ErrCorrupt) {
		// Only ranges past the end map here; say so the way ReadAt does.
		err = errors.Join(err, io.ErrUnexpectedEOF)
	}
	return &storage.Error{Op: op, Object: url, Kind: kind, Err: err}
}

// missingBucket is the cause of a request to a bucket that does not
// exist. Its text names the bucket and nothing of the SDK's error (request
// and host IDs say nothing to a person who mistyped a bucket); the SDK's
// error stays in the chain for errors.As.
type missingBucket struct {
	bucket string
	err    error
}

func (e *missingBucket) Error() string { return fmt.Sprintf("bucket %q does not exist", e.bucket) }
func (e *missingBucket) Unwrap() error { return e.err }
