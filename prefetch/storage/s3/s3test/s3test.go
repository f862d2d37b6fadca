// Package s3test runs a real S3 server for tests: versitygw with its posix
// back end, on a free loopback port, storing under a temporary folder.
//
// The versitygw binary must be on PATH or in $(go env GOPATH)/bin; tests
// fail (never skip) with the install command when it is not.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// InstallCommand installs the versitygw release these tests are written
// against.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Region is the region the server answers for.
const Region = "us-east-1"

// startTimeout bounds how long a start may take before the test fails.
const startTimeout = 30 * time.Second

// Server is a running versitygw. Its methods may be called from several
// goroutines, but Stop and Restart must not race each other.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root account's credentials.
	AccessKey, SecretKey string
	// Dir is the folder the posix back end stores buckets in.
	Dir string

	bin  string
	addr string // 127.0.0.1:PORT

	mu     sync.Mutex    // guards cmd, exited, out
	cmd    *exec.Cmd     // nil when stopped
	exited chan struct{} // closed when cmd has been waited for
	out    *lockedBuffer // the process's stdout and stderr
}

// Start starts versitygw on a free 127.0.0.1 port with an empty folder
// and waits until it accepts connections. The server is stopped when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("s3test: %v; install it with: %s", err, InstallCommand)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("s3test: finding a free port: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "gw") // t.TempDir is in os.TempDir, which has xattrs here
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{
		Endpoint:  "http://" + addr,
		AccessKey: "stoker-test-access",
		SecretKey: "stoker-test-secret-" + strconv.Itoa(port),
		Dir:       dir,
		bin:       bin,
		addr:      addr,
	}
	t.Cleanup(s.Stop)
	s.start(t)
	return s
}

// Env returns the AWS variables that point a child process (or the SDK's
// default configuration) at this server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + Region,
	}
}

// Credentials returns a provider of the root account's static credentials.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
}

// Client returns an S3 client for this server (path style, root account),
// independent of the environment.
func (s *Server) Client(t testing.TB) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  s.Credentials(),
	})
}

// CreateBucket creates bucket name, failing the test on error.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client(t).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

// Put writes data as bucket/key, failing the test on error.
func (s *Server) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	_, err := s.Client(t).PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("s3test: put s3://%s/%s: %v", bucket, key, err)
	}
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart stops the server if it runs and starts it again on the same port
// with the same folder, so buckets and objects survive.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Output returns what the server has printed so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// start runs the binary and waits for its port to accept connections, or
// for the process to exit, or for startTimeout.
func (s *Server) start(t testing.TB) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(s.bin,
		"--port", s.addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", Region,
		"--quiet",
		"posix", s.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "VGW_LOG_LEVEL=silent")
	if err := cmd.Start(); err != nil {
		t.Fatalf("s3test: starting %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("s3test: versitygw not listening on %s after %v: %v\n%s", s.addr, startTimeout, err, out.String())
		}
		select {
		case <-exited:
			s.Stop()
			t.Fatalf("s3test: versitygw exited at start (%v):\n%s", cmd.ProcessState, out.String())
		case <-tick.C:
		}
	}
}

// ready reports whether the server accepts connections and answers an S3
// call with its own credentials (so it is ours, not another process that
// took the port).
func (s *Server) ready() error {
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := s3.New(s3.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(s.Endpoint),
		UsePathStyle:     true,
		Credentials:      s.Credentials(),
		RetryMaxAttempts: 1,
	})
	_, err = client.ListBuckets(ctx, &s3.ListBucketsInput{})
	return err
}

// findBinary looks for versitygw on PATH, then in $GOPATH/bin.
func findBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var tried []string
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gp, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("versitygw is not on PATH nor at %v", tried)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
