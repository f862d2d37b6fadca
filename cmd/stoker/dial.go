package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/clients/tlsfiles"
)

// defaultServer is where stokerd listens unless told otherwise
// (stokerd --listen).
const defaultServer = "127.0.0.1:7470"

// dialFlags are the server address and the TLS and token flags of every
// command that dials a server.
type dialFlags struct {
	addr, ca, cert, key, tokenFile string
	lookupEnv                      func(string) (string, bool) // $STOKER_TOKEN
}

// addDialFlags defines --server (defaulting to server) and the TLS and
// token flags on fs.
func addDialFlags(fs *pflag.FlagSet, server string, lookupEnv func(string) (string, bool)) *dialFlags {
	f := &dialFlags{lookupEnv: lookupEnv}
	fs.StringVar(&f.addr, "server", server, "stokerd `address`: host:port or unix:///path")
	fs.StringVar(&f.ca, "tls-ca", "", "PEM CA bundle that verifies the server: dial with TLS (host:port only; a unix socket is plaintext)")
	fs.StringVar(&f.cert, "tls-cert", "", "PEM client certificate, for a server that verifies clients (stokerd --tls-ca)")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.tokenFile, "token-file", "", "file whose first line is the bearer token of a server started with --auth-token-file (default: $STOKER_TOKEN)")
	return f
}

// completeFiles makes the shell complete file names for the TLS and
// token flags.
func (f *dialFlags) completeFiles(c *cobra.Command) {
	for _, name := range []string{"tls-ca", "tls-cert", "tls-key", "token-file"} {
		_ = c.MarkFlagFilename(name)
	}
}

// options returns the client options the flags ask for: TLS, and the
// token from --token-file or $STOKER_TOKEN.
func (f *dialFlags) options() ([]stoker.Option, error) {
	var opts []stoker.Option
	if f.ca != "" || f.cert != "" || f.key != "" {
		files, err := tlsfiles.Load(f.ca, f.cert, f.key, nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, stoker.WithTLSFiles(files))
	}
	tok, _ := f.lookupEnv("STOKER_TOKEN")
	switch {
	case f.tokenFile != "":
		tokens, err := stoker.LoadTokenFile(f.tokenFile, nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, stoker.WithTokenFile(tokens))
	case tok != "":
		opts = append(opts, stoker.WithToken(tok))
	}
	return opts, nil
}

// dial connects to --server with the flags' TLS and token, and opts.
func (f *dialFlags) dial(opts ...stoker.Option) (*stoker.Client, error) {
	own, err := f.options()
	if err != nil {
		return nil, err
	}
	return stoker.Dial(f.addr, append(own, opts...)...)
}
