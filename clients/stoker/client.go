// Package stoker is the Go client of a Stoker server: open datasets, stream
// an epoch's batches as an iterator that survives broken connections by
// resuming from the last cursor, and read server statistics.
//
// It speaks the wire format (proto/stoker/v1) and takes its TLS files from
// clients/tlsfiles; it never imports the server or prefetch, so a trainer
// that links it links no storage or caching code.
package stoker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// Client talks to one Stoker server. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	api  stokerv1.LoaderClient
	opts options

	closeOnce sync.Once
	closeErr  error
}

type options struct {
	retries     int
	minBackoff  time.Duration
	maxBackoff  time.Duration
	maxMsgBytes int
	windowBytes int32
	dialOpts    []grpc.DialOption
	creds       credentials.TransportCredentials // TLS (WithTLS, WithTLSFiles); nil: plaintext
	// shared-memory delivery (WithSharedMemory)
	shm            bool
	shmRegionBytes int
	gds            bool
}

// Option configures a Client.
type Option func(*options)

// WithRetries sets how many times in a row a broken stream is resumed
// before the error is returned (default 8). Progress resets the count.
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithBackoff sets the first and the longest wait between resume attempts
// (default 50ms and 2s); each wait is jittered.
func WithBackoff(first, longest time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = first, longest }
}

// WithMaxMessageBytes sets the largest message accepted (default 1 GiB).
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMsgBytes = n } }

// WithDialOptions adds gRPC dial options (credentials, interceptors).
func WithDialOptions(d ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, d...) }
}

// Dial connects to a server at addr ("host:port" or "unix:///path").
// The connection is made lazily; errors show up on the first call.
// TLS (WithTLS, WithTLSFiles) applies to TCP only: a unix socket is local
// and served in plaintext.
func Dial(addr string, opts ...Option) (*Client, error) {
	o := options{retries: 8, minBackoff: 50 * time.Millisecond, maxBackoff: 2 * time.Second, maxMsgBytes: 1 << 30, windowBytes: 8 << 20}
	for _, f := range opts {
		f(&o)
	}
	creds := o.creds
	if creds == nil || strings.HasPrefix(addr, "unix:") {
		creds = insecure.NewCredentials()
	}
	d := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxMsgBytes)),
		grpc.WithInitialWindowSize(o.windowBytes),
		grpc.WithInitialConnWindowSize(o.windowBytes),
		// Reconnect as eagerly as streams are resumed, not after gRPC's
		// default of up to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: o.minBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: o.maxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, o.dialOpts...)
	conn, err := grpc.NewClient(addr, d...)
	if err != nil {
		return nil, fmt.Errorf("stoker: dial %s: %w", addr, err)
	}
	return &Client{conn: conn, api: stokerv1.NewLoaderClient(conn), opts: o}, nil
}

// Close closes the connection. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// Conn is the client's gRPC connection, for the services the client does
// not wrap (stokerv1.NewPeerClient(c.Conn()), hints). It is the client's:
// Close closes it.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// OpenDataset resolves a dataset URL on the server and returns its manifest.
func (c *Client) OpenDataset(ctx context.Context, url string) (*stokerv1.Dataset, error) {
	return c.OpenDatasetFormat(ctx, url, "")
}

// Stats returns the server's counters.
func (c *Client) Stats(ctx context.Context) (*stokerv1.StatsResponse, error) {
	return c.api.Stats(ctx, &stokerv1.StatsRequest{})
}
