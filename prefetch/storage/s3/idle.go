package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// idleClient is the S3 client's HTTP client with a read-progress timeout:
// a response body read that gets no byte for timeout fails with an
// *idleError, because the request is cancelled, instead of waiting on a
// connection that stays open and sends nothing. The time to the response
// headers is bounded by the transport's ResponseHeaderTimeout, set to the
// same value. Safe for concurrent use, as the client it wraps.
type idleClient struct {
	inner   aws.HTTPClient
	timeout time.Duration
}

func (c idleClient) Do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := c.inner.Do(req.WithContext(ctx))
	if err != nil || resp == nil || resp.Body == nil {
		cancel(nil)
		return resp, err
	}
	b := &idleBody{rc: resp.Body, timeout: c.timeout, cancel: cancel}
	b.timer = time.AfterFunc(time.Hour, b.expire)
	b.timer.Stop() // runs only while a Read waits
	resp.Body = b
	return resp, nil
}

// idleBody is a response body whose every Read must make progress within
// timeout; when one does not, the request's context is cancelled, which
// makes net/http abandon the connection and the Read return.
type idleBody struct {
	rc      io.ReadCloser
	timeout time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	fired   atomic.Bool // the timer went off: every Read from now fails
}

func (b *idleBody) expire() {
	b.fired.Store(true)
	b.cancel(&idleError{timeout: b.timeout})
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.fired.Load() {
		return 0, &idleError{timeout: b.timeout}
	}
	b.timer.Reset(b.timeout)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if b.fired.Load() {
		return n, &idleError{timeout: b.timeout}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// idleError is a response body that sent nothing for timeout. It is a
// timeout in the sense of net.Error, which the SDK's retryer retries (a
// List or Head whose body stalls); ReadAt reads on from where it stopped.
type idleError struct{ timeout time.Duration }

func (e *idleError) Error() string {
	return fmt.Sprintf("no bytes from storage for %v (the S3 read idle timeout, s3.Config.ReadIdleTimeout, stokerd --s3-read-timeout)", e.timeout)
}
func (e *idleError) Timeout() bool   { return true }
func (e *idleError) Temporary() bool { return true }
