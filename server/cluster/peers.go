package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// PeerConfig sets how a node reads shards from their owners.
type PeerConfig struct {
	// Timeout is the least time a read from the owner may take before the
	// node gives up and reads storage itself; the owner may itself be
	// fetching the shard from storage.
	Timeout time.Duration
	// MinRate is the slowest owner accepted, in bytes per second: a
	// shard's deadline is Timeout plus its size at this rate.
	MinRate int64
	// MaxMessageBytes is the receive limit of one chunk.
	MaxMessageBytes int
	// MaxShardBytes is the largest shard accepted from an owner: the size
	// it announces is checked before a buffer is made for it.
	MaxShardBytes int64
	// Credentials secure the connections to the other nodes (TLS: the
	// node's certificate as client certificate, its CA to verify theirs,
	// each node's certificate naming the host of its gRPC address); nil
	// dials them in plaintext.
	Credentials credentials.TransportCredentials
	// Token, when set, sends this node's bearer token with every call to
	// the other nodes (stoker.TokenFile.Credentials), for nodes started
	// with --auth-token-file.
	Token credentials.PerRPCCredentials
}

// DefaultPeerConfig returns the defaults.
func DefaultPeerConfig() PeerConfig {
	return PeerConfig{
		Timeout:         30 * time.Second, // an owner fetching from a slow S3 still wins
		MinRate:         8 << 20,          // 8 MiB/s: far below any LAN; slower means the owner is in trouble
		MaxMessageBytes: 16 << 20,         // chunks are 1 MiB
		MaxShardBytes:   16 << 30,         // 16 GiB: far past any shard, far short of a size that cannot be allocated
	}
}

func (c PeerConfig) withDefaults() PeerConfig {
	d := DefaultPeerConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MinRate <= 0 {
		c.MinRate = d.MinRate
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.MaxShardBytes <= 0 {
		c.MaxShardBytes = d.MaxShardBytes
	}
	return c
}

// ShardKey is the key a shard is placed by: its object URL, and for a
// columnar unit its byte range too (the units of one file spread over the
// nodes). It depends only on the shard, so every node, whatever it has
// opened, computes the same owner.
func ShardKey(o storage.Object) string { return o.Key().Object }

// Peers reads shards from their owners over the Peer service and keeps
// one gRPC connection per member. It is the prefetch.Remote of a node.
// Safe for concurrent use.
type Peers struct {
	node *Node

	mu     sync.Mutex                  // guards conns, closed
	conns  map[string]*grpc.ClientConn // by gRPC address
	closed bool
}

var _ prefetch.Remote = (*Peers)(nil)

// NewPeers returns the peer client of node.
func NewPeers(node *Node) *Peers {
	return &Peers{node: node, conns: map[string]*grpc.ClientConn{}}
}

// Conn returns a connection to the member serving gRPC at addr.
func (p *Peers) Conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("cluster: peers closed")
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	creds := p.node.cfg.Peer.Credentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(p.node.cfg.Peer.MaxMessageBytes)),
	}
	if tok := p.node.cfg.Peer.Token; tok != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(tok))
	}
	c, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: dialing %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// Fetch implements prefetch.Remote: it reads o's decompressed bytes from
// its owner, or returns prefetch.ErrLocal when this node owns o.
func (p *Peers) Fetch(ctx context.Context, o storage.Object) ([]byte, error) {
	return p.fetch(ctx, o, 0, 0)
}

// FetchRange implements prefetch.RangeRemote: bytes [off, off+n) of o's
// decompressed bytes from its owner, or prefetch.ErrLocal.
func (p *Peers) FetchRange(ctx context.Context, o storage.Object, off, n int64) ([]byte, error) {
	if n <= 0 {
		return []byte{}, nil
	}
	return p.fetch(ctx, o, off, n)
}

var _ prefetch.RangeRemote = (*Peers)(nil)

// fetch reads o, or its bytes [off, off+n) when n > 0, from its owner.
func (p *Peers) fetch(ctx context.Context, o storage.Object, off, n int64) ([]byte, error) {
	owner, ok := p.node.Owner(ShardKey(o))
	if !ok || owner.Name == p.node.Name() {
		return nil, prefetch.ErrLocal
	}
	if owner.Meta.GRPCAddr == "" {
		return nil, fmt.Errorf("cluster: owner %s of %s publishes no gRPC address", owner.Name, o.URL)
	}
	cfg := p.node.cfg.Peer
	size := o.Bytes()
	if n > 0 {
		size = n
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout+time.Duration(size*int64(time.Second)/cfg.MinRate))
	defer cancel()
	data, err := p.read(ctx, owner.Meta.GRPCAddr, o, off, n)
	if err != nil {
		return nil, fmt.Errorf("cluster: reading %s from owner %s (%s): %w", o.URL, owner.Name, owner.Meta.GRPCAddr, err)
	}
	return data, nil
}

func (p *Peers) read(ctx context.Context, addr string, o storage.Object, off, n int64) ([]byte, error) {
	conn, err := p.Conn(addr)
	if err != nil {
		return nil, err
	}
	stream, err := stokerv1.NewPeerClient(conn).ReadShard(ctx, &stokerv1.ReadShardRequest{Object: o.URL, Etag: o.ETag, Size: o.Size,
		UnitOffset: o.Offset, UnitLength: o.Length, Offset: off, Length: n})
	if err != nil {
		return nil, err
	}
	return receiveShard(stream, p.node.cfg.Peer.MaxShardBytes, off, n)
}

// receiveShard gathers a ReadShard stream's chunks: the shard's bytes from
// off on, to its end or n of them, each chunk naming its offset and the
// shard's length. Every number in them is the owner's word: the total is
// checked against limit and the range before a buffer is made, and no
// chunk may run past what was asked for.
func receiveShard(stream grpc.ServerStreamingClient[stokerv1.ReadShardResponse], limit, off, n int64) ([]byte, error) {
	var buf []byte
	total, want := int64(-1), n
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if buf == nil {
			total = chunk.GetTotal()
			if total < 0 || total > limit {
				return nil, fmt.Errorf("the owner announces a shard of %d bytes, outside [0, %d]", total, limit)
			}
			if off < 0 || off > total || n < 0 || n > total-off {
				return nil, fmt.Errorf("the owner announces a shard of %d bytes, for a read of %d at %d", total, n, off)
			}
			if want == 0 {
				want = total - off
			}
			buf = make([]byte, 0, want)
		}
		if chunk.GetOffset() != off+int64(len(buf)) {
			return nil, fmt.Errorf("chunk at offset %d, want %d", chunk.GetOffset(), off+int64(len(buf)))
		}
		if int64(len(chunk.GetData())) > want-int64(len(buf)) {
			return nil, fmt.Errorf("chunk of %d bytes at offset %d runs past the %d asked for", len(chunk.GetData()), chunk.GetOffset(), want)
		}
		buf = append(buf, chunk.GetData()...)
	}
	if buf == nil {
		buf = []byte{}
	}
	if total >= 0 && int64(len(buf)) != want {
		return nil, fmt.Errorf("stream ended after %d of %d bytes", len(buf), want)
	}
	return buf, nil
}

// Close closes every connection. Safe to call more than once.
func (p *Peers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for addr, c := range p.conns {
		errs = append(errs, c.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}
