package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/storage/storagetest"
)

func TestS3SourceConformance(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "suite")
	src := srv.Source(t, srv.Endpoint, 3, 0)
	storagetest.Run(t, storagetest.Harness{
		Source:  src,
		Base:    "s3://suite/",
		Put:     func(t testing.TB, name string, data []byte) { srv.Put(t, "suite", name, data) },
		Missing: "s3://no-such-bucket/",
		Metrics: src.Metrics,
	})
}

func TestS3Errors(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	srv.Put(t, "bkt", "k.tar", []byte("data"))
	good := srv.Source(t, srv.Endpoint, 2, 0)

	// A missing bucket says so, naming the URL and the bucket, and nothing
	// of the SDK's error (a HEAD's bodiless 404 included).
	_, err := good.List(ctx, "s3://no-such-bucket/train/")
	var e *storage.Error
	if !errors.Is(err, storage.ErrNotFound) || !errors.As(err, &e) || e.Object != "s3://no-such-bucket/train/" ||
		err.Error() != `list s3://no-such-bucket/train/: not found: bucket "no-such-bucket" does not exist` {
		t.Errorf("List in a missing bucket = %v, want ErrNotFound naming the URL and the bucket alone", err)
	}
	_, err = good.Stat(ctx, "s3://no-such-bucket/train-0.tar")
	if !errors.Is(err, storage.ErrNotFound) || err.Error() != `stat s3://no-such-bucket/train-0.tar: not found: bucket "no-such-bucket" does not exist` {
		t.Errorf("Stat in a missing bucket = %v, want ErrNotFound naming the URL and the bucket alone", err)
	}
	if _, err := good.Stat(ctx, "s3://bkt/missing.tar"); !errors.Is(err, storage.ErrNotFound) || strings.Contains(err.Error(), "bucket") {
		t.Errorf("Stat of a missing key = %v, want ErrNotFound, not a missing bucket", err)
	}
	for _, u := range []string{"s3:///k.tar", "s3://bkt", "s3://bkt/", "s3://bkt/dir/", "file:///b/k.tar"} {
		if _, err := good.Stat(ctx, u); !errors.Is(err, storage.ErrBadURL) {
			t.Errorf("Stat(%q) = %v, want ErrBadURL", u, err)
		}
	}

	for _, tc := range []struct{ name, access, secret string }{
		{"wrong secret", srv.AccessKey, "not-the-secret"},
		{"unknown access key", "nobody", srv.SecretKey},
	} {
		cfg := s3.DefaultConfig()
		cfg.Endpoint = srv.Endpoint
		cfg.Credentials = credentials.NewStaticCredentialsProvider(tc.access, tc.secret, "")
		src, err := s3.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Stat(ctx, "s3://bkt/k.tar")
		// versitygw answers an unknown access key with a 404, which a HEAD
		// (no body, so no code) cannot tell from a missing object.
		if !errors.Is(err, storage.ErrPermission) && !(tc.access == "nobody" && errors.Is(err, storage.ErrNotFound)) {
			t.Errorf("%s: Stat = %v, want ErrPermission", tc.name, err)
		}
		if _, err := src.List(ctx, "s3://bkt/"); !errors.Is(err, storage.ErrPermission) {
			t.Errorf("%s: List = %v, want ErrPermission", tc.name, err)
		}
		err = src.ReadAt(ctx, storage.Object{URL: "s3://bkt/k.tar"}, make([]byte, 2), 0)
		if !errors.Is(err, storage.ErrPermission) {
			t.Errorf("%s: ReadAt = %v, want ErrPermission", tc.name, err)
		}
	}
}

// A stopped server is ErrUnavailable after MaxAttempts tries; a restarted
// one serves the same objects again.
func TestS3ServerDown(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	srv.Put(t, "bkt", "k.tar", []byte("data"))
	src := srv.Source(t, srv.Endpoint, 3, 0)
	obj, err := src.Stat(ctx, "s3://bkt/k.tar")
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	before := src.Metrics()
	_, err = src.Stat(ctx, obj.URL)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Stat with the server down = %v, want ErrUnavailable", err)
	}
	if n := src.Metrics().Requests - before.Requests; n != 3 {
		t.Errorf("Stat with the server down sent %d requests, want 3 (MaxAttempts)", n)
	}
	if _, err := src.List(ctx, "s3://bkt/"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("List with the server down = %v, want ErrUnavailable", err)
	}
	if err := src.ReadAt(ctx, obj, make([]byte, 4), 0); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("ReadAt with the server down = %v, want ErrUnavailable", err)
	}

	srv.Restart(t)
	p := make([]byte, 4)
	if err := src.ReadAt(ctx, obj, p, 0); err != nil || string(p) != "data" {
		t.Fatalf("ReadAt after a restart = %q, %v", p, err)
	}
}

// The effective endpoint decides path-style addressing, whether it comes
// from the config or from AWS_ENDPOINT_URL_S3.
func TestS3PathStyle(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		endpoint string
		force    bool
		want     bool
	}{
		{"http://127.0.0.1:9000", false, true},
		{"http://localhost:9000", false, true},
		{"http://[::1]:9000", false, true},
		{"https://10.1.2.3", false, true},
		{"https://s3.example.com", false, false},
		{"https://s3.example.com", true, true},
	} {
		cfg := s3.DefaultConfig()
		cfg.Endpoint, cfg.PathStyle = tc.endpoint, tc.force
		cfg.Credentials = credentials.NewStaticCredentialsProvider("a", "b", "")
		src, err := s3.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if ep, ps := src.Endpoint(); ep != tc.endpoint || ps != tc.want {
			t.Errorf("endpoint %s (forced %v): got %s, path style %v; want path style %v", tc.endpoint, tc.force, ep, ps, tc.want)
		}
	}
	if _, err := s3.New(ctx, s3.Config{Endpoint: "127.0.0.1:9000"}); !errors.Is(err, storage.ErrBadURL) {
		t.Errorf("an endpoint without a scheme: %v, want ErrBadURL", err)
	}

	// From the environment only: the harness's variables, no config.
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	srv.Put(t, "bkt", "k.tar", []byte("data"))
	t.Setenv("AWS_ENDPOINT_URL", "http://wrong.invalid")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	src, err := s3.New(ctx, s3.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ep, ps := src.Endpoint(); ep != srv.Endpoint || !ps {
		t.Errorf("from AWS_ENDPOINT_URL_S3: endpoint %s, path style %v; want %s, true", ep, ps, srv.Endpoint)
	}
	if o, err := src.Stat(ctx, "s3://bkt/k.tar"); err != nil || o.Size != 4 {
		t.Errorf("Stat through the environment's endpoint = %+v, %v", o, err)
	}
}

// The standard retryer retries 5xx, throttling and connection resets; a
// body that breaks off is read on from where it stopped; AccessDenied is
// not retried.
func TestS3Retries(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	data := storagetest.Data("retries", 5000)
	srv.Put(t, "bkt", "k.tar", data)
	proxy := s3test.StartProxy(t, srv)
	src := srv.Source(t, proxy.URL, 4, 0)
	obj, err := src.Stat(ctx, "s3://bkt/k.tar")
	if err != nil {
		t.Fatal(err)
	}
	type faults = []s3test.Fault
	for _, tc := range []struct {
		name   string
		faults faults
		want   error
	}{
		{"500", faults{s3test.InternalError}, nil},
		{"503 twice", faults{s3test.Unavailable, s3test.Unavailable}, nil},
		{"SlowDown", faults{s3test.SlowDown, s3test.SlowDown, s3test.SlowDown}, nil},
		{"Throttling code", faults{s3test.Throttling}, nil},
		{"connection reset", faults{s3test.Drop, s3test.Drop}, nil},
		{"body cut", faults{s3test.Reset}, nil},
		{"body cut, then 503", faults{s3test.Reset, s3test.Unavailable}, nil},
		{"503 past MaxAttempts", faults{s3test.Unavailable, s3test.Unavailable, s3test.Unavailable, s3test.Unavailable}, storage.ErrUnavailable},
		{"AccessDenied", faults{s3test.AccessDenied}, storage.ErrPermission},
	} {
		proxy.Queue(tc.faults...)
		p := make([]byte, 4000)
		err := src.ReadAt(ctx, obj, p, 500)
		requests, left := proxy.Requests()
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: ReadAt: %v", tc.name, err)
		case tc.want == nil && string(p) != string(data[500:4500]):
			t.Errorf("%s: ReadAt gave wrong bytes", tc.name)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: ReadAt = %v, want %v", tc.name, err, tc.want)
		case left != 0:
			t.Errorf("%s: %d faults not used: the request was not retried", tc.name, left)
		case errors.Is(tc.want, storage.ErrPermission) && requests != 1:
			t.Errorf("%s: %d requests, want 1: AccessDenied is not retried", tc.name, requests)
		}
	}

	proxy.Queue(s3test.Reset) // without an ETag the resumed range is pinned to the first response's
	p := make([]byte, 4000)
	if err := src.ReadAt(ctx, storage.Object{URL: obj.URL}, p, 500); err != nil || string(p) != string(data[500:4500]) {
		t.Errorf("ReadAt without an ETag, body cut: %v", err)
	}
	proxy.Queue(s3test.SlowDown)
	if _, err := src.List(ctx, "s3://bkt/"); err != nil {
		t.Errorf("List after a SlowDown: %v", err)
	}
	proxy.Queue(s3test.Unavailable) // HEAD: an error without a body
	if _, err := src.Stat(ctx, obj.URL); err != nil {
		t.Errorf("Stat after a 503: %v", err)
	}
}
