package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// explain rewords an error of the command c for a person: a server that
// is not there says so and how to start one, and a server's error loses
// gRPC's "rpc error: code = ... desc =" wrapping.
func explain(c *cobra.Command, err error) error {
	if f := c.Flags().Lookup("server"); f != nil && f.Value.String() != "" && status.Code(unwrapStatus(err)) == codes.Unavailable {
		if e := noServer(f.Value.String()); e != nil {
			return e
		}
	}
	return plainStatus(err)
}

// NoServerError is a --server address where nothing listens.
type NoServerError struct {
	Addr string
	Err  error // the refused dial
}

func (e *NoServerError) Error() string {
	start := "stokerd --listen " + e.Addr
	if path, ok := unixPath(e.Addr); ok {
		start = "stokerd --unix " + path
	}
	return fmt.Sprintf("no stokerd at %s: start one (%s) or pass --server", e.Addr, start)
}

func (e *NoServerError) Unwrap() error { return e.Err }

// noServer dials addr itself: a refused connection, or a unix socket
// that is not there, is a NoServerError; nil when something answers or
// the failure is another (a TLS handshake, a timeout).
func noServer(addr string) error {
	network, target := "tcp", addr
	if path, ok := unixPath(addr); ok {
		network, target = "unix", path
	}
	conn, err := net.DialTimeout(network, target, 2*time.Second)
	if err == nil {
		conn.Close()
		return nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return &NoServerError{Addr: addr, Err: err}
	}
	return nil
}

// unixPath is the socket path of a unix:///path or unix:path address.
func unixPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return p, true
	}
	return strings.CutPrefix(addr, "unix:")
}

// unwrapStatus finds the gRPC status error inside err's chain (err itself
// when there is none).
func unwrapStatus(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.(error)
	}
	return err
}

// plainStatus replaces a gRPC status error inside err by its message, the
// server's words, which name what failed and where, and the code in
// parentheses for scripts: "rpc error: code = NotFound desc = list
// s3://b/x/: ..." reads "list s3://b/x/: ... (NotFound)".
func plainStatus(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return err
	}
	raw := se.(error).Error()
	st := se.GRPCStatus()
	text := strings.Replace(err.Error(), raw, st.Message(), 1) + " (" + st.Code().String() + ")"
	return &serverError{text: text, err: err}
}

// serverError is an error whose text is reworded and whose chain is kept.
type serverError struct {
	text string
	err  error
}

func (e *serverError) Error() string { return e.text }
func (e *serverError) Unwrap() error { return e.err }
