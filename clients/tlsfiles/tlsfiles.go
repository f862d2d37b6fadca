// Package tlsfiles owns the TLS material of Stoker read from PEM files and
// re-read when they are replaced: a CA bundle, a certificate and its key,
// turned into client configurations and gRPC credentials (the Go client,
// the stoker CLI, a cluster node reading from its peers) and into a server
// configuration (stokerd's gRPC and HTTP). Certificates rotate without a
// restart. It imports nothing of Stoker.
package tlsfiles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
)

// Files is a CA bundle, a certificate and its private key in PEM files,
// the TLS material of a Stoker client or server. Each handshake checks the
// files (modification time, size, identity) and re-reads them when one
// changed, so certificates rotate without a restart: replace the files
// (ideally by rename, certificate and key together) and the next
// connection uses the new ones; connections already open keep theirs. A
// read that fails (a key that does not match its certificate, a
// half-written file) keeps the material last read, logs, and is tried
// again at the next handshake.
//
// Safe for concurrent use.
type Files struct {
	ca, cert, key string
	log           *slog.Logger

	mu     sync.Mutex       // guards the fields below
	stamps [3]os.FileInfo   // of ca, cert and key when last read; nil for a file not given
	pair   *tls.Certificate // nil without Cert
	pool   *x509.CertPool   // nil without CA: the system's roots verify servers, no client is verified
	server *tls.Config      // built from pair and pool, reused until they change
}

// sameStamps reports whether no file changed between two stats.
func sameStamps(a, b [3]os.FileInfo) bool {
	for i := range a {
		if !Unchanged(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Unchanged reports whether two stats of a file (nil: not there, or not
// given) show the same file: what tells a changed file is its
// modification time, size and identity (a file replaced by rename is
// another file, even within the file system's timestamp granularity).
// Other files re-read on change (the client's token file) use it too.
func Unchanged(a, b os.FileInfo) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return a == nil || (a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size() && os.SameFile(a, b))
}

// Load reads the CA bundle, certificate and key files (each PEM).
// Any may be empty, but the certificate and the key go together. caFile
// holds the certificates that verify the other side: the server, for a
// client; the clients, for a server, which then requires a client
// certificate. Without it a client verifies servers with the system's
// roots and a server asks for no client certificate. log hears of reloads
// (nil discards).
func Load(caFile, certFile, keyFile string, log *slog.Logger) (*Files, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("stoker: TLS: a certificate and its key go together: give both files or neither")
	}
	if caFile == "" && certFile == "" {
		return nil, errors.New("stoker: TLS: no CA, certificate or key file")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Files{ca: caFile, cert: certFile, key: keyFile, log: log}
	stamps, err := f.stat()
	if err != nil {
		return nil, err
	}
	if err := f.read(stamps); err != nil {
		return nil, err
	}
	return f, nil
}

// stat returns the files' stamps; a file not given has none.
func (f *Files) stat() ([3]os.FileInfo, error) {
	var s [3]os.FileInfo
	for i, name := range []string{f.ca, f.cert, f.key} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return s, fmt.Errorf("stoker: TLS: %w", err)
		}
		s[i] = fi
	}
	return s, nil
}

// read reads the files, and on success makes them current. f.mu must be
// held, or f not yet shared.
func (f *Files) read(stamps [3]os.FileInfo) error {
	var pool *x509.CertPool
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return fmt.Errorf("stoker: TLS CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("stoker: TLS CA %s: no PEM certificate in it", f.ca)
		}
	}
	var pair *tls.Certificate
	if f.cert != "" {
		p, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return fmt.Errorf("stoker: TLS certificate %s and key %s: %w", f.cert, f.key, err)
		}
		pair = &p
	}
	f.stamps, f.pool, f.pair = stamps, pool, pair
	f.server = f.serverConfig()
	return nil
}

// current returns the material, re-reading the files first when one of
// them changed since it was last read.
func (f *Files) current() (*tls.Certificate, *x509.CertPool, *tls.Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamps, err := f.stat()
	if err == nil && sameStamps(stamps, f.stamps) {
		return f.pair, f.pool, f.server
	}
	if err == nil {
		err = f.read(stamps)
	}
	if err != nil {
		f.log.Warn("TLS files changed but cannot be read: keeping the certificates read before", "err", err)
	} else {
		args := []any{"ca", f.ca, "cert", f.cert}
		if f.pair != nil && f.pair.Leaf != nil {
			args = append(args, "serial", f.pair.Leaf.SerialNumber.String(), "not_after", f.pair.Leaf.NotAfter)
		}
		f.log.Info("TLS files reloaded", args...)
	}
	return f.pair, f.pool, f.server
}

// Leaf returns the certificate as it is now (nil without one).
func (f *Files) Leaf() *x509.Certificate {
	pair, _, _ := f.current()
	if pair == nil {
		return nil
	}
	return pair.Leaf
}

// ClientConfig returns the configuration of a client: the CA bundle as it
// is now verifies servers, and the certificate, re-read when its files
// change, is sent when a server asks for one. Use Credentials where the CA
// bundle may change too.
func (f *Files) ClientConfig() *tls.Config {
	_, pool, _ := f.current()
	return &tls.Config{
		RootCAs:    pool,
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair, _, _ := f.current()
			if pair == nil {
				return &tls.Certificate{}, nil // none: the server says what it wanted
			}
			return pair, nil
		},
	}
}

// ServerConfig returns the configuration of a server: it presents the
// certificate and, with a CA bundle, requires every client to present a
// certificate the bundle verifies (mutual TLS). Both are re-read when
// their files change. The server must have a certificate.
func (f *Files) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			_, _, cfg := f.current()
			if cfg == nil {
				return nil, errors.New("stoker: TLS: this server has no certificate")
			}
			return cfg, nil
		},
	}
}

// serverConfig builds the per-handshake server configuration from the
// current material; nil without a certificate.
func (f *Files) serverConfig() *tls.Config {
	if f.pair == nil {
		return nil
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{*f.pair},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"}, // gRPC clients insist on ALPN h2
	}
	if f.pool != nil {
		cfg.ClientCAs, cfg.ClientAuth = f.pool, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// Credentials returns gRPC client credentials that take the CA bundle and
// the certificate as they are at each handshake: a rotated CA bundle
// verifies the next connection's server.
func (f *Files) Credentials() credentials.TransportCredentials {
	return &fileCreds{f: f, TransportCredentials: credentials.NewTLS(f.ClientConfig())}
}

// fileCreds are client credentials built afresh from the files at each
// handshake; the embedded credentials answer Info and serve nothing else.
type fileCreds struct {
	credentials.TransportCredentials
	f *Files
}

func (c *fileCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.f.ClientConfig()).ClientHandshake(ctx, authority, raw)
}

func (c *fileCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("stoker: TLS: client credentials cannot serve (use ServerConfig)")
}

func (c *fileCreds) Clone() credentials.TransportCredentials {
	return &fileCreds{f: c.f, TransportCredentials: c.TransportCredentials.Clone()}
}
