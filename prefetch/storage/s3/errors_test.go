package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// apiErr builds the error the SDK returns for an S3 error response.
func apiErr(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "test"},
		},
	}}
}

// statusErr builds the error for a response without a body (HEAD).
func statusErr(status int) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "HeadObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      errors.New("no body"),
		},
	}}
}

// netErr builds a transport failure as net/http reports it.
func netErr(errno syscall.Errno) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &url.Error{
		Op: "Get", URL: "http://127.0.0.1:1/b/k",
		Err: &net.OpError{Op: "read", Net: "tcp", Err: fmt.Errorf("wrapped: %w", errno)},
	}}
}

func TestS3ErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		kind   error
		object string
	}{
		{"NoSuchBucket", apiErr(404, "NoSuchBucket"), storage.ErrNotFound, "s3://bkt/k"},
		{"NoSuchKey", apiErr(404, "NoSuchKey"), storage.ErrNotFound, "s3://bkt/k"},
		{"HEAD 404", statusErr(404), storage.ErrNotFound, "s3://bkt/k"},
		{"AccessDenied", apiErr(403, "AccessDenied"), storage.ErrPermission, "s3://bkt/k"},
		{"InvalidAccessKeyId", apiErr(403, "InvalidAccessKeyId"), storage.ErrPermission, "s3://bkt/k"},
		{"SignatureDoesNotMatch", apiErr(403, "SignatureDoesNotMatch"), storage.ErrPermission, "s3://bkt/k"},
		{"HEAD 403", statusErr(403), storage.ErrPermission, "s3://bkt/k"},
		{"PreconditionFailed", apiErr(412, "PreconditionFailed"), storage.ErrChanged, "s3://bkt/k"},
		{"HEAD 412", statusErr(412), storage.ErrChanged, "s3://bkt/k"},
		{"InvalidRange", apiErr(416, "InvalidRange"), storage.ErrCorrupt, "s3://bkt/k"},
		{"InvalidBucketName", apiErr(400, "InvalidBucketName"), storage.ErrBadURL, "s3://bkt/k"},
		{"SlowDown", apiErr(503, "SlowDown"), storage.ErrUnavailable, "s3://bkt/k"},
		{"InternalError", apiErr(500, "InternalError"), storage.ErrUnavailable, "s3://bkt/k"},
		{"HEAD 503", statusErr(503), storage.ErrUnavailable, "s3://bkt/k"},
		{"an unknown code on 404 goes by status", apiErr(404, "SomethingNew"), storage.ErrNotFound, "s3://bkt/k"},
		{"connection refused", netErr(syscall.ECONNREFUSED), storage.ErrUnavailable, "s3://bkt/k"},
		{"connection reset", netErr(syscall.ECONNRESET), storage.ErrUnavailable, "s3://bkt/k"},
		{"cancelled", fmt.Errorf("op: %w", context.Canceled), storage.ErrUnavailable, "s3://bkt/k"},
		{"an *Error passes as it is", &storage.Error{Op: "read", Object: "x", Kind: storage.ErrChanged}, storage.ErrChanged, "x"},
	} {
		err := s3Error("read", "s3://bkt/k", "bkt", tc.err)
		var e *storage.Error
		if !errors.As(err, &e) || !errors.Is(err, tc.kind) || e.Object != tc.object {
			t.Errorf("%s: %v, want kind %q naming %s", tc.name, err, tc.kind, tc.object)
			continue
		}
		if !errors.Is(err, tc.err) && tc.name != "an *Error passes as it is" {
			t.Errorf("%s: the cause is lost: %v", tc.name, err)
		}
	}
	if err := s3Error("list", "s3://bkt/train/", "bkt", apiErr(404, "NoSuchBucket")); err.Error() != `list s3://bkt/train/: not found: bucket "bkt" does not exist` {
		t.Errorf("NoSuchBucket: %q, want the URL and the bucket, and nothing of the SDK's error", err)
	}
	if err := s3Error("read", "u", "b", apiErr(416, "InvalidRange")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("InvalidRange: %v does not wrap io.ErrUnexpectedEOF", err)
	}
}

// The retryer Source configures retries what a loader must survive, and
// nothing that retrying cannot fix.
func TestS3Retryable(t *testing.T) {
	src, err := New(context.Background(), Config{Endpoint: "http://127.0.0.1:1", MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := src.retryer
	if r.MaxAttempts() != 3 {
		t.Errorf("MaxAttempts = %d, want 3", r.MaxAttempts())
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"500", apiErr(500, "InternalError"), true},
		{"502", statusErr(502), true},
		{"503", statusErr(503), true},
		{"504", statusErr(504), true},
		{"SlowDown", apiErr(503, "SlowDown"), true},
		{"Throttling on a 400", apiErr(400, "Throttling"), true},
		{"RequestTimeout", apiErr(400, "RequestTimeout"), true},
		{"connection reset", netErr(syscall.ECONNRESET), true},
		{"connection refused", netErr(syscall.ECONNREFUSED), true},
		{"AccessDenied", apiErr(403, "AccessDenied"), false},
		{"NoSuchKey", apiErr(404, "NoSuchKey"), false},
		{"PreconditionFailed", apiErr(412, "PreconditionFailed"), false},
		{"InvalidRange", apiErr(416, "InvalidRange"), false},
		{"cancelled", context.Canceled, false},
	} {
		if got := r.IsErrorRetryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNeedsPathStyle(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"":                          false,
		"http://127.0.0.1:7070":     true,
		"http://[::1]:7070":         true,
		"http://localhost":          true,
		"http://minio.localhost:80": true,
		"https://s3.amazonaws.com":  false,
		"https://storage.example":   false,
		"http://10.0.0.5":           true,
	} {
		if got := needsPathStyle(endpoint); got != want {
			t.Errorf("needsPathStyle(%q) = %v, want %v", endpoint, got, want)
		}
	}
}

// FuzzRangeTotal feeds rangeTotal arbitrary Content-Range headers (the S3
// server's words): it is a size or -1, never a negative size, and it reads
// back the size of a well-formed header.
func FuzzRangeTotal(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1000", "bytes */1000", "bytes 0-0/*", "", "/", "bytes 1-2/-5", "bytes 1-2/ 7", "bytes 1-2/99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := rangeTotal(s)
		if n < -1 {
			t.Fatalf("rangeTotal(%q) = %d", s, n)
		}
		if n >= 0 {
			if again := rangeTotal(fmt.Sprintf("bytes 0-0/%d", n)); again != n {
				t.Fatalf("rangeTotal of a header with size %d = %d", n, again)
			}
		}
	})
}
