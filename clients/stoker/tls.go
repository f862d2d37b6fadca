package stoker

import (
	"crypto/tls"
	"log/slog"

	"google.golang.org/grpc/credentials"

	"github.com/stoker-data/stoker/clients/tlsfiles"
)

// WithTLS dials TCP addresses with TLS configured by cfg (a unix socket is
// local and stays plaintext, as stokerd serves it). cfg is used as it is:
// its RootCAs verify the server, whose certificate must name the host of
// the address dialled (DNS name or IP address); its certificate, if any,
// is the client certificate a server started with --tls-ca requires.
// WithTLSFiles follows files that are replaced while in use.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.creds = credentials.NewTLS(cfg) }
}

// WithTLSFiles dials TCP addresses with TLS from f, re-reading the files
// when they change, so a rotated client certificate or CA bundle is used
// by the next connection without a new Client. Unix sockets stay
// plaintext, as with WithTLS.
func WithTLSFiles(f *TLSFiles) Option {
	return func(o *options) { o.creds = f.Credentials() }
}

// TLSFiles is the TLS material read from PEM files and re-read when they
// are replaced (package tlsfiles, shared with stokerd and its cluster
// peers).
type TLSFiles = tlsfiles.Files

// LoadTLSFiles reads the CA bundle, certificate and key files (each PEM);
// it is tlsfiles.Load, which says what each file is for. log hears of
// reloads (nil discards).
func LoadTLSFiles(caFile, certFile, keyFile string, log *slog.Logger) (*TLSFiles, error) {
	return tlsfiles.Load(caFile, certFile, keyFile, log)
}
