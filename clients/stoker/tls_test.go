package stoker_test

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles/tlstest"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/server"
)

// serveTLS starts an in-process server with the TLS configuration cfg and
// returns its address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	sc := server.DefaultConfig()
	sc.Cache.Dir, sc.Cache.MemoryBytes, sc.Cache.DiskBytes = filepath.Join(t.TempDir(), "cache"), 1<<20, 0
	sc.TLS = cfg
	srv, err := server.New(sc, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return lis.Addr().String()
}

// waitStats polls Stats until it succeeds (want) or fails (!want).
func waitStats(t *testing.T, c *stoker.Client, want bool) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Stats(ctx)
		cancel()
		if (err == nil) == want {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats: %v after 20s, want success %v", err, want)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// A server's certificate files replaced while it runs: the next connection
// gets the new certificate; a half-done replacement (a key that does not
// match) keeps the old one until the pair is whole again.
func TestTLSFilesRotateServerCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	first := ca.Issue(t, "stokerd", "127.0.0.1")
	sf := tlstest.Write(t, dir, "server", first, ca)
	client := tlstest.Write(t, dir, "client", ca.Issue(t, "trainer"), ca).Load(t)
	addr := serveTLS(t, sf.Load(t).ServerConfig())
	if got := tlstest.ServerSerial(t, addr, client.ClientConfig()); got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("server presents serial %v, want %v", got, first.Cert.SerialNumber)
	}
	c, err := stoker.Dial(addr, stoker.WithTLSFiles(client), stoker.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = waitStats(t, c, true) // nil: it returns once Stats succeeds

	second := ca.Issue(t, "stokerd", "127.0.0.1")
	tlstest.WriteFile(t, sf.Cert, second.CertPEM) // the key is still the first's
	if got := tlstest.ServerSerial(t, addr, client.ClientConfig()); got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("with a mismatched key the server presents serial %v, want the first's %v", got, first.Cert.SerialNumber)
	}
	tlstest.WriteFile(t, sf.Key, second.KeyPEM)
	if got := tlstest.ServerSerial(t, addr, client.ClientConfig()); got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation the server presents serial %v, want %v", got, second.Cert.SerialNumber)
	}
	if _, err := c.Stats(context.Background()); err != nil {
		t.Fatalf("the connection opened before rotation: %v", err)
	}
}

// A client's CA bundle and certificate replaced while it runs: the same
// Client's next connection uses them, and the server's CA bundle, replaced
// too, accepts the new client certificate.
func TestTLSFilesRotateCA(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := tlstest.NewCA(t, "old"), tlstest.NewCA(t, "new")
	sf := tlstest.Write(t, dir, "server", newCA.Issue(t, "stokerd", "127.0.0.1"), oldCA) // serves a new-CA certificate, trusts old-CA clients
	cf := tlstest.Write(t, dir, "client", oldCA.Issue(t, "trainer"), oldCA)
	addr := serveTLS(t, sf.Load(t).ServerConfig())
	c, err := stoker.Dial(addr, stoker.WithTLSFiles(cf.Load(t)), stoker.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := waitStats(t, c, false); !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("a client that trusts only the old CA: %v", err)
	}

	tlstest.Write(t, dir, "server", newCA.Issue(t, "stokerd", "127.0.0.1"), oldCA, newCA)
	tlstest.Write(t, dir, "client", newCA.Issue(t, "trainer"), oldCA, newCA)
	_ = waitStats(t, c, true)
}
