package cluster

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// lyingOwner is a Peer service whose ReadShard sends the chunks it is given.
type lyingOwner struct {
	stokerv1.UnimplementedPeerServer
	chunks []*stokerv1.ReadShardResponse
}

func (o *lyingOwner) ReadShard(_ *stokerv1.ReadShardRequest, st stokerv1.Peer_ReadShardServer) error {
	for _, c := range o.chunks {
		if err := st.Send(c); err != nil {
			return err
		}
	}
	return nil
}

// An owner's announced total and chunk sizes are checked before they are
// trusted: a total of 2^62 used to be allocated (a panic, outside any
// handler, that took the reading node down), and chunks past the total to
// be appended.
func TestReceiveShardChecksTheOwner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []*stokerv1.ReadShardResponse
		want   string // in the error; "" for success
	}{
		{"a total of 2^62", []*stokerv1.ReadShardResponse{{Total: 1 << 62, Data: []byte("x")}}, "announces a shard of"},
		{"a negative total", []*stokerv1.ReadShardResponse{{Total: -1, Data: []byte("x")}}, "announces a shard of"},
		{"a chunk past the total", []*stokerv1.ReadShardResponse{{Total: 3, Data: []byte("abcd")}}, "runs past"},
		{"a second chunk past the total", []*stokerv1.ReadShardResponse{{Total: 5, Data: []byte("abc")}, {Offset: 3, Total: 5, Data: []byte("def")}}, "runs past"},
		{"a short stream", []*stokerv1.ReadShardResponse{{Total: 5, Data: []byte("abc")}}, "after 3 of 5"},
		{"a whole shard", []*stokerv1.ReadShardResponse{{Total: 5, Data: []byte("abc")}, {Offset: 3, Total: 5, Data: []byte("de")}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := grpc.NewServer()
			stokerv1.RegisterPeerServer(srv, &lyingOwner{chunks: tc.chunks})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st, err := stokerv1.NewPeerClient(conn).ReadShard(context.Background(), &stokerv1.ReadShardRequest{Object: "s3://b/k"})
			if err != nil {
				t.Fatal(err)
			}
			data, err := receiveShard(st, DefaultPeerConfig().MaxShardBytes, 0, 0)
			switch {
			case tc.want == "" && (err != nil || string(data) != "abcde"):
				t.Fatalf("got %q, %v; want abcde", data, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %q, %v; want an error saying %q", data, err, tc.want)
			}
		})
	}
}
