package main

import (
	"flag"

	"github.com/stoker-data/stoker/clients/stoker"
)

// tlsFlags are the TLS flags every command that dials a server takes.
type tlsFlags struct{ ca, cert, key *string }

func addTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		ca:   fs.String("tls-ca", "", "PEM CA bundle that verifies the server: dial with TLS (host:port only; a unix socket is plaintext)"),
		cert: fs.String("tls-cert", "", "PEM client certificate, for a server that verifies clients (stokerd --tls-ca)"),
		key:  fs.String("tls-key", "", "PEM private key of --tls-cert"),
	}
}

// options returns the client options the flags ask for: none without TLS.
func (f tlsFlags) options() ([]stoker.Option, error) {
	if *f.ca == "" && *f.cert == "" && *f.key == "" {
		return nil, nil
	}
	files, err := stoker.LoadTLSFiles(*f.ca, *f.cert, *f.key, nil)
	if err != nil {
		return nil, err
	}
	return []stoker.Option{stoker.WithTLSFiles(files)}, nil
}

// dial connects to addr with the flags' TLS and opts.
func (f tlsFlags) dial(addr string, opts ...stoker.Option) (*stoker.Client, error) {
	tlsOpts, err := f.options()
	if err != nil {
		return nil, err
	}
	return stoker.Dial(addr, append(tlsOpts, opts...)...)
}
