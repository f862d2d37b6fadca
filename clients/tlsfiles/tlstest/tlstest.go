// Package tlstest makes certificate authorities and certificates for
// tests (ECDSA P-256, made in the test, never committed), and writes them
// as the PEM files stokerd and the clients read. It imports only
// clients/tlsfiles of Stoker.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoker-data/stoker/clients/tlsfiles"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, the bundle that verifies what it issued.
	PEM []byte
}

// Pair is a certificate issued by a CA and its key.
type Pair struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA named name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert, der := sign(tb, tmpl, tmpl, key, key)
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Issue makes a certificate for name, good for both server and client
// authentication (a stokerd node is both), valid for hosts (IP addresses
// or DNS names).
func (ca *CA) Issue(tb testing.TB, name string, hosts ...string) Pair {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	cert, der := sign(tb, tmpl, ca.Cert, key, ca.key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return Pair{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

// Files are the paths of a CA bundle, a certificate and its key.
type Files struct{ CA, Cert, Key string }

// Write writes the CA bundle (the PEM of every CA in cas) and the pair to
// dir as name-ca.pem, name.pem and name-key.pem, replacing what is there
// by rename, as a rotation would.
func Write(tb testing.TB, dir, name string, p Pair, cas ...*CA) Files {
	tb.Helper()
	var bundle []byte
	for _, ca := range cas {
		bundle = append(bundle, ca.PEM...)
	}
	f := Files{CA: filepath.Join(dir, name+"-ca.pem"), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	WriteFile(tb, f.CA, bundle)
	WriteFile(tb, f.Cert, p.CertPEM)
	WriteFile(tb, f.Key, p.KeyPEM)
	return f
}

// Load reads the files as stokerd and the clients do.
func (f Files) Load(tb testing.TB) *tlsfiles.Files {
	tb.Helper()
	files, err := tlsfiles.Load(f.CA, f.Cert, f.Key, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// ServerSerial opens a new TLS connection to addr with cfg (a client
// configuration, for gRPC's ALPN h2) and returns the serial number of the
// certificate the server presents.
func ServerSerial(tb testing.TB, addr string, cfg *tls.Config) *big.Int {
	tb.Helper()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// WriteFile writes data to path by rename, so a reader never sees half of it.
func WriteFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// sign makes the certificate tmpl describes for key, signed by signer as
// parent, and returns it parsed and in DER.
func sign(tb testing.TB, tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, der
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
