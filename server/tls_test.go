package server

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles"
	"github.com/stoker-data/stoker/clients/tlsfiles/tlstest"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// tlsServer is an in-process server with TLS on TCP and a plaintext unix
// socket, logging into a buffer.
type tlsServer struct {
	addr, unix, url string
	logs            *syncBuffer
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startTLSServer(t *testing.T, files *tlsfiles.Files) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 3, PerShard: 10, SampleSize: 2048, Seed: 9}).Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(dir, "cache"), 64<<20, 0
	cfg.TLS = files.ServerConfig()
	logs := &syncBuffer{}
	srv, err := New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "stoker.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range []net.Listener{lis, ul} {
		wg.Go(func() {
			if err := srv.Serve(l); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		wg.Wait()
	})
	return &tlsServer{addr: lis.Addr().String(), unix: "unix://" + sock, url: "file://" + filepath.Join(dir, "data") + "/", logs: logs}
}

// tlsPKI is a CA, the server's files, and a client's files.
type tlsPKI struct {
	ca             *tlstest.CA
	server, client tlstest.Files
	dir            string
}

func newTLSPKI(t *testing.T) tlsPKI {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "stoker test CA")
	return tlsPKI{
		ca:     ca,
		server: tlstest.Write(t, dir, "server", ca.Issue(t, "stokerd", "127.0.0.1"), ca),
		client: tlstest.Write(t, dir, "trainer", ca.Issue(t, "trainer"), ca),
		dir:    dir,
	}
}

func loadFiles(t *testing.T, ca, cert, key string) *tlsfiles.Files {
	t.Helper()
	f, err := tlsfiles.Load(ca, cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tlsClient(t *testing.T, addr string, opts ...stoker.Option) *stoker.Client {
	t.Helper()
	c, err := stoker.Dial(addr, append([]stoker.Option{stoker.WithRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// With mutual TLS a trainer with a certificate reads the same bytes over
// TCP as over the unix socket, which stays plaintext.
func TestMutualTLSStreamsAndUnixStaysPlaintext(t *testing.T) {
	p := newTLSPKI(t)
	s := startTLSServer(t, loadFiles(t, p.server.CA, p.server.Cert, p.server.Key))
	e := stoker.Epoch{URL: s.url, Seed: 4, BatchSize: 7}

	files := loadFiles(t, p.client.CA, p.client.Cert, p.client.Key)
	overTLS, _ := readAll(t, tlsClient(t, s.addr, stoker.WithTLSFiles(files)), e)
	// TLS options are ignored for a unix socket, as the server serves it.
	overUnix, _ := readAll(t, tlsClient(t, s.unix, stoker.WithTLSFiles(files)), e)
	if len(overTLS) != 30 {
		t.Fatalf("%d samples over TLS, want 30", len(overTLS))
	}
	if !maps.EqualFunc(overTLS, overUnix, func(a, b map[string][]byte) bool { return maps.EqualFunc(a, b, bytes.Equal) }) {
		t.Fatal("the epoch over TLS differs from the epoch over the unix socket")
	}
	// A static tls.Config works too.
	if _, err := tlsClient(t, s.addr, stoker.WithTLS(files.ClientConfig())).Stats(context.Background()); err != nil {
		t.Fatalf("Stats with WithTLS: %v", err)
	}
}

// Each way of getting TLS wrong fails with an error that names the
// problem, on the client and in the server's log.
func TestTLSErrorsNameTheProblem(t *testing.T) {
	p := newTLSPKI(t)
	s := startTLSServer(t, loadFiles(t, p.server.CA, p.server.Cert, p.server.Key))
	other := tlstest.NewCA(t, "another CA")
	rogue := tlstest.Write(t, p.dir, "rogue", other.Issue(t, "rogue"), p.ca) // trusts the server, signed by the wrong CA
	wrongCA := tlstest.Write(t, p.dir, "wrongca", p.ca.Issue(t, "trainer2"), other)

	for _, tc := range []struct {
		name   string
		opts   []stoker.Option
		code   codes.Code
		client string // in the client's error
		server string // in the server's log
	}{
		{"plaintext client", nil, codes.Unauthenticated, "requires TLS on this port and this client connected without it", "connected without TLS"},
		{"wrong CA", []stoker.Option{stoker.WithTLSFiles(loadFiles(t, wrongCA.CA, wrongCA.Cert, wrongCA.Key))}, codes.Unavailable,
			"certificate signed by unknown authority", "remote error: tls: bad certificate"},
		{"no client certificate", []stoker.Option{stoker.WithTLSFiles(loadFiles(t, p.client.CA, "", ""))}, codes.Unavailable,
			"certificate required", "client didn't provide a certificate"},
		{"client certificate of another CA", []stoker.Option{stoker.WithTLSFiles(loadFiles(t, rogue.CA, rogue.Cert, rogue.Key))}, codes.Unavailable,
			"unknown certificate authority", "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := tlsClient(t, s.addr, tc.opts...).Stats(ctx)
			if err == nil {
				t.Fatal("Stats succeeded")
			}
			t.Logf("client: %v", err)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.client) {
				t.Errorf("got %v, want code %v and %q", err, tc.code, tc.client)
			}
			waitFor(t, "the server's log line", func() bool { return strings.Contains(s.logs.String(), tc.server) })
		})
	}
	t.Logf("server log:\n%s", s.logs)
}
