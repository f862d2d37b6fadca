package stoker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/stoker-data/stoker/clients/tlsfiles"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// WithToken sends token as a bearer token ("authorization: Bearer
// TOKEN") with every call, for a server started with --auth-token-file.
// Without TLS the token crosses the network in the clear: use TLS off a
// trusted host.
func WithToken(token string) Option {
	return WithDialOptions(grpc.WithPerRPCCredentials(tokenCreds{token: func() string { return token }}))
}

// WithTokenFile sends the first token of f with every call, re-reading the
// file when it changes, so a rotated token is used without a new Client.
func WithTokenFile(f *TokenFile) Option {
	return WithDialOptions(grpc.WithPerRPCCredentials(f.Credentials()))
}

// TokenFile is a file of bearer tokens, one a line (blank lines and lines
// starting with # are skipped): a server accepts every token in it, a
// client sends the first. Each use checks the file (modification time,
// size, identity) and re-reads it when it changed, so tokens rotate
// without a restart: add the new token as a second line on the servers,
// move the clients to it (their files' first line), then drop the old
// one. A read that fails or finds no token keeps the tokens read before,
// logs, and is tried again at the next use.
//
// Safe for concurrent use.
type TokenFile struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex  // guards stamp, tokens
	stamp  os.FileInfo // of the file when last read
	tokens []string
}

// LoadTokenFile reads the tokens in path; a file without one is an error.
// log hears of reloads (nil discards).
func LoadTokenFile(path string, log *slog.Logger) (*TokenFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &TokenFile{path: path, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stoker: token file: %w", err)
	}
	if err := f.read(fi); err != nil {
		return nil, err
	}
	return f, nil
}

// read reads the file and, when it holds a token, makes it current; f.mu
// must be held, or f not yet shared.
func (f *TokenFile) read(fi os.FileInfo) error {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("stoker: token file: %w", err)
	}
	var toks []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			toks = append(toks, line)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stoker: token file %s: %w", f.path, err)
	}
	if len(toks) == 0 {
		return fmt.Errorf("stoker: token file %s: no token in it (one a line)", f.path)
	}
	f.stamp, f.tokens = fi, toks
	return nil
}

// Tokens returns the tokens as the file holds them now.
func (f *TokenFile) Tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err == nil && tlsfiles.Unchanged(fi, f.stamp) {
		return f.tokens
	}
	if err == nil {
		err = f.read(fi)
	}
	if err != nil {
		f.log.Warn("token file changed but cannot be read: keeping the tokens read before", "err", err)
	} else {
		f.log.Info("token file reloaded", "path", f.path, "tokens", len(f.tokens))
	}
	return f.tokens
}

// Token returns the first token: the one a client sends.
func (f *TokenFile) Token() string { return f.Tokens()[0] }

// Credentials returns gRPC per-call credentials that send Token.
func (f *TokenFile) Credentials() credentials.PerRPCCredentials {
	return tokenCreds{token: f.Token}
}

// tokenCreds send a bearer token with every call. They do not require
// TLS: a unix socket is local, and a plaintext TCP server is the
// operator's choice.
type tokenCreds struct{ token func() string }

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	t := c.token()
	if t == "" {
		return nil, errors.New("stoker: empty bearer token")
	}
	return map[string]string{"authorization": "Bearer " + t}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }
