package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	// tlsRecordHandshake is the first byte of every TLS ClientHello.
	tlsRecordHandshake = 0x16
	// refuseFor bounds how long a plaintext client on the TLS port is
	// answered before its connection is closed.
	refuseFor = 10 * time.Second
	// maxRefusing bounds the plaintext connections answered at once; past
	// it they are closed unanswered.
	maxRefusing = 16
	// lingerFor bounds how long a connection whose handshake failed is
	// drained before it is closed (lingerClose).
	lingerFor = time.Second
)

// errPlaintext is the status every call of a client that reached the TLS
// port without TLS gets: a closed connection would read as a network fault.
var errPlaintext = status.Error(codes.Unauthenticated,
	"stokerd requires TLS on this port and this client connected without it: connect with TLS "+
		"(the server's CA, and a client certificate when the server verifies clients; "+
		"Go: stoker.WithTLSFiles; stoker CLI: --tls-ca, --tls-cert, --tls-key)")

// tlsOption returns the gRPC server option for cfg.TLS: TLS on TCP
// connections, plaintext on unix sockets, which are local; none without
// cfg.TLS.
func (s *Server) tlsOption() grpc.ServerOption {
	if s.cfg.TLS == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(&serverCreds{
		TransportCredentials: credentials.NewTLS(s.cfg.TLS),
		log:                  s.log,
		refusing:             make(chan struct{}, maxRefusing),
	})
}

// serverCreds are the server's transport credentials: TLS on TCP (the
// embedded credentials), none on a unix socket. A gRPC client that speaks
// plaintext to the TLS port is handed to a small server of its own, whose
// every call fails with errPlaintext, so the client learns what is wrong.
type serverCreds struct {
	credentials.TransportCredentials
	log      *slog.Logger
	refusing chan struct{} // semaphore of the plaintext connections being answered
}

func (c *serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if raw.LocalAddr().Network() == "unix" {
		return insecure.NewCredentials().ServerHandshake(raw)
	}
	var first [1]byte
	if _, err := io.ReadFull(raw, first[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF // closed before a byte: a prober, not worth a log line
		}
		return nil, nil, err
	}
	conn := &handshakeConn{Conn: raw, first: first[0], pending: true}
	switch first[0] {
	case tlsRecordHandshake:
	case 'P': // "PRI * HTTP/2.0": the preface of a gRPC client without TLS
		c.log.Warn("a gRPC client connected without TLS: refusing its calls", "remote", raw.RemoteAddr().String())
		conn.done.Store(true)
		c.refuse(conn)
		return nil, nil, credentials.ErrConnDispatched
	default:
		c.log.Warn("a client sent something other than TLS to the TLS port: closing", "remote", raw.RemoteAddr().String())
		return nil, nil, fmt.Errorf("not a TLS handshake from %s (first byte %#x)", raw.RemoteAddr(), first[0])
	}
	nc, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.log.Warn("TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		return nil, nil, fmt.Errorf("TLS handshake with %s: %w", raw.RemoteAddr(), err)
	}
	conn.done.Store(true)
	return nc, info, nil
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	return &serverCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log, refusing: c.refusing}
}

// refuse serves conn, a plaintext gRPC connection, with a server that
// answers every call with errPlaintext, until the client hangs up or
// refuseFor passes.
func (c *serverCreds) refuse(conn net.Conn) {
	select {
	case c.refusing <- struct{}{}:
	default:
		conn.Close()
		return
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return errPlaintext }))
	lis := newOneConnListener(conn)
	go func() {
		defer func() { <-c.refusing }()
		t := time.AfterFunc(refuseFor, srv.Stop)
		_ = srv.Serve(lis) // returns when the connection closes, or at Stop
		t.Stop()
		srv.Stop()
	}()
}

// handshakeConn is a raw connection whose first byte was read already: it
// is read again first. Closed before its handshake is done (a failed one),
// it lingers.
type handshakeConn struct {
	net.Conn
	first   byte
	pending bool        // first is not read yet; used by the reading goroutine only
	done    atomic.Bool // the handshake succeeded or the connection was handed on: Close closes at once
}

func (c *handshakeConn) Close() error {
	if c.done.Load() {
		return c.Conn.Close()
	}
	return lingerClose(c.Conn)
}

// lingerClose closes a connection whose TLS handshake failed so that the
// client reads the alert that says why (certificate required, unknown
// authority): in TLS 1.3 the client has finished its side and sent its
// first bytes by then, and closing with them unread would reset the
// connection, so the client would see a broken pipe instead. It stops
// writing, drains what the client sends until it hangs up (or lingerFor
// passes), then closes.
func lingerClose(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(lingerFor))
		_, _ = io.Copy(io.Discard, c)
	}
	return c.Close()
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		c.pending = false
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}

// oneConnListener accepts one connection, then reports itself closed once
// that connection or the listener closes.
type oneConnListener struct {
	conn     chan net.Conn // holds the connection until accepted
	done     chan struct{} // closed by Close or by the connection's Close
	doneOnce sync.Once
	addr     net.Addr
}

func newOneConnListener(conn net.Conn) *oneConnListener {
	l := &oneConnListener{conn: make(chan net.Conn, 1), done: make(chan struct{}), addr: conn.LocalAddr()}
	l.conn <- &closeNotifyConn{Conn: conn, l: l}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conn:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.doneOnce.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

// closeNotifyConn closes its listener when it is closed.
type closeNotifyConn struct {
	net.Conn
	l *oneConnListener
}

func (c *closeNotifyConn) Close() error {
	err := c.Conn.Close()
	_ = c.l.Close()
	return err
}
