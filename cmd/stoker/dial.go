package main

import (
	"flag"
	"os"

	"github.com/stoker-data/stoker/clients/stoker"
)

// dialFlags are the TLS and token flags every command that dials a server
// takes.
type dialFlags struct{ ca, cert, key, tokenFile *string }

func addDialFlags(fs *flag.FlagSet) dialFlags {
	return dialFlags{
		ca:        fs.String("tls-ca", "", "PEM CA bundle that verifies the server: dial with TLS (host:port only; a unix socket is plaintext)"),
		cert:      fs.String("tls-cert", "", "PEM client certificate, for a server that verifies clients (stokerd --tls-ca)"),
		key:       fs.String("tls-key", "", "PEM private key of --tls-cert"),
		tokenFile: fs.String("token-file", "", "file whose first line is the bearer token of a server started with --auth-token-file (default: $STOKER_TOKEN)"),
	}
}

// options returns the client options the flags ask for: TLS, and the
// token from --token-file or $STOKER_TOKEN.
func (f dialFlags) options() ([]stoker.Option, error) {
	var opts []stoker.Option
	if *f.ca != "" || *f.cert != "" || *f.key != "" {
		files, err := stoker.LoadTLSFiles(*f.ca, *f.cert, *f.key, nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, stoker.WithTLSFiles(files))
	}
	switch tok := os.Getenv("STOKER_TOKEN"); {
	case *f.tokenFile != "":
		tokens, err := stoker.LoadTokenFile(*f.tokenFile, nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, stoker.WithTokenFile(tokens))
	case tok != "":
		opts = append(opts, stoker.WithToken(tok))
	}
	return opts, nil
}

// dial connects to addr with the flags' TLS and token, and opts.
func (f dialFlags) dial(addr string, opts ...stoker.Option) (*stoker.Client, error) {
	own, err := f.options()
	if err != nil {
		return nil, err
	}
	return stoker.Dial(addr, append(own, opts...)...)
}
