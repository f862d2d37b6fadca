package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Config configures a Source. Start from DefaultConfig.
type Config struct {
	// Endpoint overrides the S3 endpoint ("http://127.0.0.1:7070"). Empty
	// (the default) leaves it to the SDK, which honours the standard
	// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL variables and the shared
	// config file, else AWS itself.
	Endpoint string
	// Region of the bucket. Empty (the default) takes AWS_REGION,
	// AWS_DEFAULT_REGION or the shared config file, else "us-east-1".
	Region string
	// PathStyle forces path-style addressing (http://host/bucket/key).
	// Default false; it is turned on anyway when the effective endpoint's
	// host is an IP address or localhost, where virtual hosts cannot work.
	PathStyle bool
	// MaxAttempts is how many times one request is tried, the first
	// included (default 5). Retries use the SDK's standard retryer:
	// exponential backoff with full jitter, on 5xx, throttling codes
	// (SlowDown, …), request timeouts and connection errors.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts (default 20s, the
	// SDK's).
	MaxBackoff time.Duration
	// MaxConns caps the connections open to the endpoint, and the idle
	// ones kept (default 64): throughput from S3 comes from many ranged
	// GETs in flight.
	MaxConns int
	// Credentials, if set, replace the SDK's default chain (environment,
	// shared files, container and instance roles). Default nil.
	Credentials aws.CredentialsProvider
	// ReadIdleTimeout bounds how long one request waits for progress
	// (default 30s): for its response headers (the transport's
	// ResponseHeaderTimeout), then for each read of its body. A GET whose
	// body stops with the connection left open is read on from where it
	// stopped, up to MaxAttempts times; a List or Head is retried by the
	// SDK. 30 s is a hundred times S3's usual first byte, and far more
	// than any healthy pause mid-body.
	ReadIdleTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		MaxAttempts: 5,
		MaxBackoff:  20 * time.Second,
		MaxConns:    64,

		ReadIdleTimeout: 30 * time.Second,
	}
}

// Source reads objects named s3://bucket/key through aws-sdk-go-v2.
// URLs are not percent-decoded: everything after the bucket's slash is the
// key. Every method is safe to call concurrently.
type Source struct {
	client    *s3.Client
	retryer   aws.Retryer // the client's; used again for body-read retries
	endpoint  string      // effective endpoint, "" for AWS's own
	pathStyle bool
	counters  storage.Counters
	link      storage.Link // first byte and body rate of completed GETs
}

var (
	_ storage.Source = (*Source)(nil)
	_ storage.Writer = (*Source)(nil)
	_ storage.Linked = (*Source)(nil)
)

// New loads the AWS configuration (environment and shared files,
// overridden by cfg) and returns a Source for s3:// URLs. It sends no
// request.
func New(ctx context.Context, cfg Config) (*Source, error) {
	def := DefaultConfig()
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = def.MaxAttempts
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = def.MaxBackoff
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = def.MaxConns
	}
	if cfg.ReadIdleTimeout <= 0 {
		cfg.ReadIdleTimeout = def.ReadIdleTimeout
	}
	if cfg.Endpoint != "" {
		if u, err := neturl.Parse(cfg.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, &storage.Error{Op: "config", Object: cfg.Endpoint, Kind: storage.ErrBadURL, Err: errors.New("S3 endpoint must be an http:// or https:// URL with a host")}
		}
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxConnsPerHost = cfg.MaxConns
		tr.MaxIdleConnsPerHost = cfg.MaxConns
		tr.ResponseHeaderTimeout = cfg.ReadIdleTimeout
	})
	newRetryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			o.MaxBackoff = cfg.MaxBackoff
			// No client-side retry quota: a loader has many ranged GETs in
			// flight, and a burst of errors would otherwise fail healthy
			// requests early. MaxAttempts bounds each request.
			o.RateLimiter = ratelimit.None
		})
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(newRetryer),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("prefetch: loading AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	s := &Source{}
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		// The SDK has resolved AWS_ENDPOINT_URL_S3 and friends into
		// BaseEndpoint before it runs this function.
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		s.endpoint = aws.ToString(o.BaseEndpoint)
		o.UsePathStyle = cfg.PathStyle || needsPathStyle(s.endpoint)
		s.pathStyle = o.UsePathStyle
		o.APIOptions = append(o.APIOptions, s.countRequests)
		// Wrapped here, after the SDK has set up its own client (a custom
		// CA bundle needs the buildable client at config load).
		o.HTTPClient = idleClient{inner: o.HTTPClient, timeout: cfg.ReadIdleTimeout}
	})
	s.retryer = s.client.Options().Retryer
	return s, nil
}

// Endpoint returns the effective endpoint ("" for AWS's own) and whether
// path-style addressing is on.
func (s *Source) Endpoint() (endpoint string, pathStyle bool) { return s.endpoint, s.pathStyle }

// Metrics returns a snapshot of the source's counters: Requests counts
// HTTP requests, retries included; Bytes the bytes ReadAt delivered.
func (s *Source) Metrics() storage.Metrics { return s.counters.Snapshot() }

// Link returns what the source's completed GETs have shown of one
// connection: the time to the first byte and the body rate (zero before
// any has completed).
func (s *Source) Link() (storage.LinkEstimate, bool) { return s.link.Estimate(), true }

// countRequests counts every attempt: it sits after the retry middleware.
func (s *Source) countRequests(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("StokerCountRequests",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			s.counters.Request()
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// Stat returns the object at url (HeadObject). Its ETag is the object's
// version token: the ETag, or for a store that sends none, one made of
// Last-Modified and size (see lmVersion).
func (s *Source) Stat(ctx context.Context, url string) (storage.Object, error) {
	const op = "stat"
	bucket, key, err := s3Object(op, url)
	if err != nil {
		return storage.Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return storage.Object{}, s.statError(ctx, op, url, bucket, err)
	}
	size := aws.ToInt64(out.ContentLength)
	return storage.Object{URL: url, Size: size, ETag: s3Version(out.ETag, out.LastModified, size)}, nil
}

// List returns the objects whose URL starts with prefix (ListObjectsV2),
// sorted by URL, with version tokens as Stat gives them. Keys ending in "/"
// (folder markers) are left out. A missing bucket is ErrNotFound naming the
// bucket.
func (s *Source) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	const op = "list"
	bucket, keyPrefix, err := s3Split(op, prefix)
	if err != nil {
		return nil, err
	}
	in := &s3.ListObjectsV2Input{Bucket: &bucket}
	if keyPrefix != "" {
		in.Prefix = &keyPrefix
	}
	var objs []storage.Object
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s3Error(op, prefix, bucket, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if key == "" || strings.HasSuffix(key, "/") {
				continue
			}
			size := aws.ToInt64(o.Size)
			objs = append(objs, storage.Object{URL: s3Scheme + bucket + "/" + key, Size: size, ETag: s3Version(o.ETag, o.LastModified, size)})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].URL < objs[j].URL })
	return objs, nil
}

// ReadAt fills p with a ranged GetObject. With obj.ETag set the request
// carries If-Match, so a rewritten object fails with ErrChanged (412); an
// "lm:" version (an object without an ETag) is compared with each
// response's Last-Modified and size instead. A range past the end is
// ErrCorrupt wrapping io.ErrUnexpectedEOF. A body that breaks off mid-read,
// or sends nothing for ReadIdleTimeout, is read on from where it stopped,
// with the retryer's backoff, up to MaxAttempts times in all; then the
// error is ErrUnavailable naming the range and the attempts.
func (s *Source) ReadAt(ctx context.Context, obj storage.Object, p []byte, off int64) error {
	const op = "read"
	bucket, key, err := s3Object(op, obj.URL)
	if err != nil {
		return err
	}
	if off < 0 {
		return storage.RangeError(op, obj.URL, off, len(p), -1)
	}
	if len(p) == 0 {
		return nil
	}
	g := rangeGet{in: s3.GetObjectInput{Bucket: &bucket, Key: &key}, url: obj.URL, version: obj.ETag}
	done := 0
	for attempt := 1; ; attempt++ {
		n, err := s.getRange(ctx, &g, p[done:], off+int64(done))
		done += n
		s.counters.Read(n)
		if err == nil {
			return nil
		}
		var be *bodyError
		if !errors.As(err, &be) {
			return s3Error(op, obj.URL, bucket, err)
		}
		if attempt >= s.retryer.MaxAttempts() || ctx.Err() != nil {
			return s3Error(op, obj.URL, bucket, fmt.Errorf("bytes [%d, %d), %d of them read, after %d attempts: %w", off, off+int64(len(p)), done, attempt, err))
		}
		delay, derr := s.retryer.RetryDelay(attempt, be.err)
		if derr != nil {
			return s3Error(op, obj.URL, bucket, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return s3Error(op, obj.URL, bucket, ctx.Err())
		case <-t.C:
		}
	}
}

// Put stores data as the object at url with one PutObject (retried by the
// SDK, the body being seekable). A missing bucket is ErrNotFound naming
// the bucket.
func (s *Source) Put(ctx context.Context, url string, data []byte) error {
	const op = "put"
	bucket, key, err := s3Object(op, url)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return s3Error(op, url, bucket, err)
	}
	return nil
}

// bodyError is a response body that broke off: the request succeeded, so
// the SDK's retryer never saw it, and ReadAt reads on from where it stopped.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// rangeGet is one ReadAt's requests: the GetObject input and the version
// its reads are pinned to ("" until the first response says).
type rangeGet struct {
	in      s3.GetObjectInput
	url     string
	version string
}

// getRange reads len(p) bytes at off with one GetObject (which the SDK
// retries itself). It returns how many bytes of p it filled, and an SDK
// error, an *Error, or a *bodyError. It pins g.version to the first
// response's.
func (s *Source) getRange(ctx context.Context, g *rangeGet, p []byte, off int64) (int, error) {
	const op = "read"
	req := g.in
	req.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))
	if g.version != "" && !isLMVersion(g.version) {
		req.IfMatch = aws.String(g.version)
	}
	start := time.Now()
	out, err := s.client.GetObject(ctx, &req)
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	headers := time.Now()
	if out.ContentLength != nil && *out.ContentLength != int64(len(p)) {
		if n := *out.ContentLength; n > int64(len(p)) {
			return 0, &storage.Error{Op: op, Object: g.url, Kind: storage.ErrCorrupt, Err: fmt.Errorf("asked for %d bytes at %d, got %d: range ignored", len(p), off, n)}
		}
		return 0, storage.RangeError(op, g.url, off, len(p), rangeTotal(aws.ToString(out.ContentRange)))
	}
	size := rangeTotal(aws.ToString(out.ContentRange))
	if size < 0 && out.ContentRange == nil {
		size = int64(len(p)) // the whole object came back, and it is len(p) bytes
	}
	switch {
	case g.version == "":
		g.version = s3Version(out.ETag, out.LastModified, size) // a read that resumes must not get another version
	case isLMVersion(g.version):
		if got := lmToken(out.LastModified, size); got != g.version {
			return 0, &storage.Error{Op: op, Object: g.url, Kind: storage.ErrChanged, Err: fmt.Errorf("version %s (Last-Modified and size), want %s", got, g.version)}
		}
	}
	n, err := io.ReadFull(out.Body, p)
	if err != nil {
		return n, &bodyError{fmt.Errorf("body broke off after %d of %d bytes: %w", n, len(p), err)}
	}
	s.link.Observe(headers.Sub(start), n, time.Since(headers))
	return n, nil
}

// rangeTotal returns the object size of a "bytes a-b/size" Content-Range,
// or -1 when there is none ("*") or it is not a size.
func rangeTotal(contentRange string) int64 {
	_, total, ok := strings.Cut(contentRange, "/")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// needsPathStyle reports whether endpoint's host is an IP address or
// localhost, where bucket.host virtual addressing cannot resolve.
func needsPathStyle(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := neturl.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}
