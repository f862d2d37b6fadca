package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/shm"
	"github.com/stoker-data/stoker/shuffle"
)

// ShmConfig sets shared-memory delivery.
type ShmConfig struct {
	// Dir holds the region files; empty means /dev/shm (or the temporary
	// folder where there is no /dev/shm).
	Dir string
	// RegionBytes is a stream's region when the client asks for none.
	RegionBytes int
	// MaxRegionBytes caps what a client may ask for.
	MaxRegionBytes int
	// Socket is the unix socket the server is served on (stokerd --unix),
	// told in Stats to clients on this host so they can switch to it and
	// to shared memory; empty: none.
	Socket string
}

// DefaultShmConfig returns the defaults.
func DefaultShmConfig() ShmConfig {
	return ShmConfig{
		RegionBytes:    128 << 20, // 128 MiB: a few 8 MiB parts in flight while the client works on one
		MaxRegionBytes: 2 << 30,   // 2 GiB: bounds what one stream can pin of the host's memory
	}
}

// shmStream places one stream's messages in its region.
type shmStream struct {
	reg       *shm.Registry
	region    *shm.Region
	announced bool
	extents   *extentSource   // nil unless the stream asked for gds
	tier      *tierSource     // nil unless the stream asked for shm_tier and the tier is shared
	release   func()          // gives the region's bytes back to the limits
	size      int64           // the bytes release gives back
	limits    *limiter        // where release's bytes were taken, for a detached region's smaller share
	ctx       context.Context // the stream's: names its connection to the limits
	inline    int             // the most bytes a message may carry on the copy path (under gRPC's send limit)
}

// localPeer says whether the caller is on this host: on the unix socket,
// or on TCP from a loopback address.
func localPeer(ctx context.Context) bool {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return false
	}
	if p.Addr.Network() == "unix" {
		return true
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// openShm makes the region of a stream that asked for shared memory. Only
// a client on the server's unix socket is on the same host for sure.
func (l *loader) openShm(ctx context.Context, req *stokerv1.StreamBatchesRequest, ds *dataset.Dataset) (*shmStream, error) {
	if p, ok := grpcpeer.FromContext(ctx); !ok || p.Addr == nil || p.Addr.Network() != "unix" {
		return nil, status.Error(codes.FailedPrecondition, "shm: needs a connection over the server's unix socket (stokerd --unix PATH, client unix:///PATH)")
	}
	cfg := l.s.cfg.Shm
	size := cfg.RegionBytes
	if want := req.GetShmRegionBytes(); want > 0 {
		if want > uint64(cfg.MaxRegionBytes) {
			return nil, invalid("shm_region_bytes", fmt.Sprintf("%d is over the server's limit of %d", want, cfg.MaxRegionBytes))
		}
		size = int(want)
	}
	if need := l.s.cfg.MaxPartBytes; size < need {
		return nil, invalid("shm_region_bytes", fmt.Sprintf("%d is under one message part (%d bytes)", size, need))
	}
	ring := 0 // a region with no room for a ring besides a whole part has none: the client calls ReleaseShm
	if req.GetShmReleaseRing() && size >= l.s.cfg.MaxPartBytes+shm.RingBytes {
		ring = shm.RingBytes
	}
	release, err := l.s.limits.acquire(ctx, 0, int64(size))
	if err != nil {
		return nil, err
	}
	g, err := l.s.shm.Open(size, ring > 0)
	if err != nil {
		release()
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	s := &shmStream{reg: l.s.shm, region: g, release: release, size: int64(size), limits: l.s.limits, ctx: ctx, inline: l.s.cfg.MaxMessageBytes - l.s.cfg.MaxMessageBytes/8}
	if req.GetGds() {
		s.extents = &extentSource{cache: l.s.cache, ds: ds}
	}
	if r := l.s.region.pinned; req.GetShmTier() && r != nil && r.Path != "" {
		s.tier = &tierSource{region: &stokerv1.ShmRegion{Id: "tier", Path: r.Path, Size: uint64(cap(r.Bytes()))},
			mem: r.Bytes(), cache: l.s.cache, ds: ds}
	}
	return s, nil
}

// place copies msg's field bytes (n of them) into a lease of the region
// and leaves only their offsets in msg, waiting while the region is full;
// samples are msg's samples as the stream read them. When the views the
// client holds fill the region (shm.ErrHeld) it leaves the bytes in msg
// instead, the copy path: a client that keeps old batches never stalls
// the stream. Tier fields are left in the tier only while the tier
// fields the client holds as views take at most half the region's size:
// past that they are copied, so held views bound what they pin.
func (s *shmStream) place(ctx context.Context, msg *stokerv1.StreamBatchesResponse, samples []*prefetch.SampleData, n int) error {
	var data [][]byte // every field's bytes, put back on the copy path
	for _, smp := range msg.Samples {
		for _, f := range smp.Fields {
			data = append(data, f.Data)
		}
	}
	// Samples taken unread (their shard on disk) have no bytes in msg;
	// on the copy path they would.
	taken, unreadBytes := s.extents.take(samples)
	var unpins []func()
	// Fields left in the tier count against the region like copied ones:
	// what a client holds unreleased is bounded by the region's size,
	// however large the shards it pins (a WebDataset shard may be a GiB).
	var pinned int64
	total := n
	if s.tier != nil {
		if _, heldPinned := s.region.Held(); 2*heldPinned <= int64(s.region.Size()-s.region.Ring()) {
			var moved int
			unpins, moved = s.tier.replace(msg, samples)
			n -= moved
			pinned = int64(moved)
		}
	}
	var extentBytes int
	if s.extents != nil {
		more, moved := s.extents.replace(msg, samples, taken)
		unpins = append(unpins, more...)
		n -= moved
		extentBytes = moved + unreadBytes
	}
	lease, err := s.region.Alloc(ctx, n, pinned, msg.Step)
	if err == nil {
		s.region.Attach(lease, unpins)
	}
	if errors.Is(err, shm.ErrHeld) && total+unreadBytes <= s.inline && unreadBytes > 0 {
		// The copy path: read what was sent unread, while still pinned.
		if rerr := s.extents.read(taken); rerr != nil {
			err = rerr
		} else {
			k := 0
			for i, smp := range msg.Samples {
				for j := range smp.Fields {
					if data[k] == nil {
						data[k] = samples[i].Fields[j].Data
					}
					k++
				}
			}
		}
	}
	if err != nil {
		for _, u := range unpins {
			u()
		}
	}
	switch {
	case errors.Is(err, shm.ErrHeld) && total+unreadBytes <= s.inline:
		k := 0
		for _, smp := range msg.Samples {
			for _, f := range smp.Fields {
				f.Data, f.ShmTier, f.ShmOffset, f.ShmLength, f.Extent = data[k], false, 0, 0, nil
				k++
			}
		}
		s.reg.AddFallback()
		return nil
	case errors.Is(err, shm.ErrHeld):
		return status.Errorf(codes.ResourceExhausted, "%v, and a message of %d bytes is over the send limit: release old views, or ask for a larger shm_region_bytes", err, total+unreadBytes)
	case errors.Is(err, shm.ErrTooBig):
		return status.Errorf(codes.ResourceExhausted, "%v: ask for a larger shm_region_bytes", err)
	case errors.Is(err, shm.ErrRegionClosed):
		return status.Error(codes.Canceled, "shm: region closed")
	case err != nil:
		return status.FromContextError(err).Err()
	}
	s.reg.AddTierBytes(uint64(pinned))
	s.reg.AddExtentBytes(uint64(extentBytes))
	buf := s.region.Bytes(lease)
	off := 0
	for _, smp := range msg.Samples {
		for _, f := range smp.Fields {
			if f.Extent != nil || f.ShmTier {
				continue
			}
			k := copy(buf[off:], f.Data)
			f.ShmOffset, f.ShmLength, f.Data = uint64(lease.Offset()+off), uint64(k), nil
			off += k
		}
	}
	s.reg.AddServed(uint64(off))
	msg.ShmLease = &stokerv1.ShmLease{Id: lease.ID(), Offset: uint64(lease.Offset()), Length: uint64(lease.Len())}
	if !s.announced {
		s.announced = true
		msg.ShmRegion = &stokerv1.ShmRegion{Id: s.region.ID(), Path: s.region.Path(), Size: uint64(s.region.Size()), ReleaseRing: uint64(s.region.Ring())}
		if s.tier != nil {
			msg.ShmTier = s.tier.region
		}
	}
	return nil
}

// unread is the sample at pos taken without reading its bytes when the
// stream sends extents and its shard is on disk only (see
// extentSource.sample); nil otherwise, for the caller to read it. plain
// says the stream sends samples' bytes (no pipeline).
func (s *shmStream) unread(ctx context.Context, ps *prefetch.Stream, plan *shuffle.Plan, pos int, plain bool) (*prefetch.SampleData, error) {
	if s == nil || s.extents == nil || !plain {
		return nil, nil
	}
	return s.extents.sample(ctx, ps, plan, pos)
}

// checkStep fails a step whose bytes cannot all be in the region at once
// (the client releases a step only once it has every part), before any
// of its parts is sent: the client then still has the region mapped when
// it reads the error. With a shared tier some fields may skip the region,
// so the check is left to alloc.
func (s *shmStream) checkStep(samples []*prefetch.SampleData) error {
	if s == nil || s.tier != nil {
		return nil
	}
	size := int64(s.region.Size() - s.region.Ring())
	total := int64(0)
	for _, d := range samples {
		total += int64(d.Size())
	}
	if total > size {
		return status.Errorf(codes.ResourceExhausted, "shm: a step of %d bytes does not fit the region's %d: ask for a larger shm_region_bytes", total, size)
	}
	return nil
}

// drain waits until the client has released or taken as views every
// lease (so it had the region file open before the stream ends and the
// file goes) or until the client goes away.
func (s *shmStream) drain(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.region.Drain(ctx)
	return nil
}

// close ends the stream's region: at once, freeing every lease, unless
// the client holds views of it (shm.Region.Detach): then when it lets go
// of them. Until then what it still takes (its ring and the held
// leases' pages, the rest given back) counts against the limits instead
// of its whole size.
func (s *shmStream) close() {
	if s == nil {
		return
	}
	if s.extents != nil {
		s.extents.forget() // a step that ended unsent
	}
	var mu sync.Mutex // guards release
	release := s.release
	keep := func(kept int64) {
		// The region's share shrinks to what it still takes, in one step:
		// it stays counted however full the limits are meanwhile.
		mu.Lock()
		defer mu.Unlock()
		release = s.limits.shrink(s.ctx, s.size, kept)
	}
	s.region.Detach(keep, func() {
		mu.Lock()
		r := release
		mu.Unlock()
		r()
	})
}

// sendSamples sends a WebDataset message, through the region when the
// stream asked for shared memory.
func (l *loader) sendSamples(stream stokerv1.Loader_StreamBatchesServer, sh *shmStream, msg *stokerv1.StreamBatchesResponse, samples []*prefetch.SampleData, n int) error {
	if sh != nil {
		if err := sh.place(stream.Context(), msg, samples, n); err != nil {
			return err
		}
	}
	return l.send(stream, msg, len(msg.Samples), n)
}

func (l *loader) ReleaseShm(_ context.Context, req *stokerv1.ReleaseShmRequest) (*stokerv1.ReleaseShmResponse, error) {
	g := l.s.shm.Get(req.GetRegion())
	if g == nil {
		return nil, status.Errorf(codes.NotFound, "shm region %q: not open (its stream ended)", req.GetRegion())
	}
	if unknown := g.Release(req.GetLeases()); unknown > 0 {
		return nil, status.Errorf(codes.InvalidArgument, "shm region %q: %d of %d leases are not held", req.GetRegion(), unknown, len(req.GetLeases()))
	}
	return &stokerv1.ReleaseShmResponse{}, nil
}
