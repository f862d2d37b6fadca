package server

import (
	"context"
	"net"
	"testing"

	grpcpeer "google.golang.org/grpc/peer"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func TestLocalPeer(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.UnixAddr{Name: "/run/stoker.sock", Net: "unix"}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 3, 2, 1), Port: 5000}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 5000}, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 5000}, false},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.7"), Port: 5000}, false},
		{nil, false},
	} {
		ctx := grpcpeer.NewContext(context.Background(), &grpcpeer.Peer{Addr: tc.addr})
		if got := localPeer(ctx); got != tc.want {
			t.Errorf("localPeer(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if localPeer(context.Background()) {
		t.Error("a context without a peer is local")
	}
}

// Stats names the server's unix socket to a client on this host (here
// over loopback TCP), and to no one else.
func TestStatsNamesTheSocketToLocalClients(t *testing.T) {
	const sock = "/tmp/stoker-test/stokerd-1.sock"
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 2, SampleSize: 16}, func(c *Config) { c.Shm.Socket = sock })
	st, err := h.client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetHost().GetUnixSocket(); got != sock {
		t.Fatalf("a loopback client was told %q, want %q", got, sock)
	}
	l := &loader{s: h.srv}
	remote := grpcpeer.NewContext(context.Background(), &grpcpeer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}})
	resp, err := l.Stats(remote, &stokerv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetHost().GetUnixSocket(); got != "" {
		t.Fatalf("a remote client was told the socket %q", got)
	}
}
