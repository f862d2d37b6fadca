package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/cluster"
)

// chunkBytes is the size of one ReadShard message: large enough to keep
// per-message cost small, small enough to stream without long stalls.
const chunkBytes = 1 << 20

// peer implements the Peer gRPC service other nodes call.
type peer struct {
	stokerv1.UnimplementedPeerServer
	s *Server
}

// ReadShard serves a shard from this node's cache, fetching it from
// storage once if needed. It never asks another node (GetLocal), so a read
// never hops twice even while nodes disagree on membership.
func (p *peer) ReadShard(req *stokerv1.ReadShardRequest, stream stokerv1.Peer_ReadShardServer) error {
	o := storage.Object{URL: req.GetObject(), Size: req.GetSize(), ETag: req.GetEtag(), Offset: req.GetUnitOffset(), Length: req.GetUnitLength()}
	if err := p.s.checkShard("shard", o); err != nil {
		return err
	}
	off, n := req.GetOffset(), req.GetLength()
	if off < 0 || n < 0 {
		return invalid("offset", fmt.Sprintf("range [%d, +%d) is negative", off, n))
	}
	data, base, total, release, err := p.readRange(o, off, n)
	if err != nil {
		return toStatus(err)
	}
	if data == nil { // not a range in the cache: the whole shard, read once if need be
		r, err := p.s.shards.GetLocal(stream.Context(), o)
		if err != nil {
			return toStatus(err)
		}
		data, base, total, release = r.Bytes(), 0, int64(len(r.Bytes())), r.Release
	}
	defer release()
	end, err := shardRange(off, n, total)
	if err != nil {
		return err
	}
	p.s.peerServed.Add(1)
	for {
		hi := min(off+chunkBytes, end)
		if err := stream.Send(&stokerv1.ReadShardResponse{Offset: off, Data: data[off-base : hi-base], Total: total}); err != nil {
			return err
		}
		off = hi
		if off >= end {
			return nil
		}
	}
}

// readRange serves a ranged read from the cache alone (a sample of a shard
// this node keeps, read from disk by its blocks): the bytes, the shard
// offset of their first, the shard's length and how to release them; nil
// data when the cache has no such range.
func (p *peer) readRange(o storage.Object, off, n int64) (data []byte, base, total int64, release func(), err error) {
	if n == 0 {
		return nil, 0, 0, nil, nil
	}
	key := o.Key()
	total, ok := p.s.cache.EntrySize(key)
	if !ok || off > total || n > total-off {
		return nil, 0, 0, nil, nil
	}
	r, _, err := p.s.cache.AcquireRange(key, off, n)
	if err != nil || r == nil {
		return nil, 0, 0, nil, err
	}
	return r.Bytes(), off, total, r.Release, nil
}

func (p *peer) Warm(_ context.Context, req *stokerv1.WarmRequest) (*stokerv1.WarmResponse, error) {
	switch {
	case req.GetHintId() == "":
		return nil, invalid("hint_id", "is empty")
	case len(req.GetHintId()) > maxHintIDBytes:
		return nil, invalid("hint_id", fmt.Sprintf("is %d bytes, over %d", len(req.GetHintId()), maxHintIDBytes))
	case len(req.GetShards()) > maxHintShards:
		return nil, invalid("shards", fmt.Sprintf("%d shards, over %d", len(req.GetShards()), maxHintShards))
	}
	objs := make([]storage.Object, len(req.GetShards()))
	for i, sh := range req.GetShards() {
		objs[i] = shardObject(sh)
		if err := p.s.checkShard(fmt.Sprintf("shards[%d]", i), objs[i]); err != nil {
			return nil, err
		}
	}
	p.s.hints.start(req.GetHintId(), objs, unixMilli(req.GetDeadlineUnixMs()), req.GetOnlyIfRoom())
	return &stokerv1.WarmResponse{}, nil
}

func (p *peer) HintStatus(_ context.Context, req *stokerv1.HintStatusRequest) (*stokerv1.HintStatusResponse, error) {
	pr, ok := p.s.hints.progress(req.GetHintId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "hint %q: not known on this node", req.GetHintId())
	}
	return &stokerv1.HintStatusResponse{Progress: pr}, nil
}

func (p *peer) Members(ctx context.Context, req *stokerv1.MembersRequest) (*stokerv1.MembersResponse, error) {
	return p.s.members(ctx, req.GetUrl())
}

// members lists the cluster with every live member's Stats and, for a
// dataset URL, the owner of each shard.
func (s *Server) members(ctx context.Context, url string) (*stokerv1.MembersResponse, error) {
	node := s.cfg.Cluster
	resp := &stokerv1.MembersResponse{Self: s.selfName()}
	if node == nil {
		resp.Members = []*stokerv1.Member{{Name: "local", State: "alive", Stats: s.Stats(),
			CacheCapacity: uint64(s.cfg.Cache.MemoryBytes + s.cfg.Cache.DiskBytes)}}
	} else {
		var wg sync.WaitGroup
		for _, m := range node.Members() {
			pm := &stokerv1.Member{Name: m.Name, GrpcAddr: m.Meta.GRPCAddr, Zone: m.Meta.Zone, CacheCapacity: uint64(m.Meta.Capacity), State: m.State}
			resp.Members = append(resp.Members, pm)
			switch {
			case m.Name == node.Name():
				pm.Stats = s.Stats()
			case m.State == "alive" || m.State == "suspect":
				wg.Add(1)
				go func() {
					defer wg.Done()
					pm.Stats, pm.Error = s.remoteStats(ctx, m.Meta.GRPCAddr)
				}()
			}
		}
		wg.Wait()
	}
	if url == "" {
		return resp, nil
	}
	ds, err := s.open(ctx, url, "")
	if err != nil {
		return nil, err
	}
	byName := map[string]*stokerv1.Member{}
	for _, pm := range resp.Members {
		byName[pm.Name] = pm
	}
	owner := func(storage.Object) string { return "local" } // a single node owns everything
	if node != nil {
		pool := node.Pool()
		owner = func(o storage.Object) string {
			m, _ := cluster.OwnerOf(cluster.ShardKey(o), pool)
			return m.Name // "" when no member is alive
		}
	}
	for i := range ds.Manifest.Shards {
		sh := ds.Object(i)
		name := owner(sh)
		resp.Owners = append(resp.Owners, name)
		if pm := byName[name]; pm != nil {
			pm.OwnedShards++
			pm.OwnedBytes += uint64(sh.Bytes())
		}
	}
	return resp, nil
}

func (s *Server) remoteStats(ctx context.Context, addr string) (*stokerv1.StatsResponse, string) {
	if addr == "" {
		return nil, "no gRPC address"
	}
	conn, err := s.peers.Conn(addr)
	if err != nil {
		return nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := stokerv1.NewLoaderClient(conn).Stats(ctx, &stokerv1.StatsRequest{})
	if err != nil {
		return nil, err.Error()
	}
	return st, ""
}

// owners splits shards by owner among the live members but those in
// skip, keeping their order; a shard whose pool has no member left, or a
// single node, goes to this node. Skipping a member hands each of its
// shards to the next owner in rendezvous order: the one that owns it once
// the cluster sees that member gone.
func (s *Server) owners(objs []storage.Object, skip map[string]bool) (names []string, parts map[string][]storage.Object, addrs map[string]string) {
	parts, addrs = map[string][]storage.Object{}, map[string]string{}
	pools := [][]cluster.Member{nil} // a single node owns everything
	if node := s.cfg.Cluster; node != nil {
		pools = node.Pools() // with zone-local owners, each zone warms its own
	}
	for i, pool := range pools {
		pools[i] = slices.DeleteFunc(slices.Clone(pool), func(m cluster.Member) bool { return skip[m.Name] })
	}
	for _, pool := range pools {
		for _, o := range objs {
			name := s.selfName()
			if m, ok := cluster.OwnerOf(cluster.ShardKey(o), pool); ok {
				name = m.Name
				addrs[name] = m.Meta.GRPCAddr
			}
			if _, ok := parts[name]; !ok {
				names = append(names, name)
			}
			parts[name] = append(parts[name], o)
		}
	}
	return names, parts, addrs
}

func (s *Server) selfName() string {
	if s.cfg.Cluster == nil {
		return "local"
	}
	return s.cfg.Cluster.Name()
}
