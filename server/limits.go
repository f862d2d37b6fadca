package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/dustin/go-humanize"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Limits bounds what clients hold at once, over all connections and on
// one connection, so that one client cannot take the memory every other
// stream needs. A call past a limit is refused with RESOURCE_EXHAUSTED
// naming the limit and the flag that raises it; it allocates nothing.
type Limits struct {
	// MaxStreams bounds the streams open at once over all connections
	// (StreamBatches to trainers and ReadShard to other nodes).
	MaxStreams int
	// MaxStreamsPerConn bounds the streams open at once on one client
	// connection.
	MaxStreamsPerConn int
	// MaxShmBytes bounds the bytes of the shared-memory regions open at
	// once over all streams.
	MaxShmBytes int64
	// MaxShmBytesPerConn bounds them for the streams of one connection.
	MaxShmBytesPerConn int64
}

// DefaultLimits returns the defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxStreams:         512,     // 8 GPUs x 16 loader workers x 4 ranks' worth, with room for the other nodes' reads
		MaxStreamsPerConn:  64,      // a client process rarely needs more than its loader workers
		MaxShmBytes:        8 << 30, // 8 GiB of /dev/shm: 64 default regions of 128 MiB
		MaxShmBytesPerConn: 4 << 30, // 4 GiB: two regions of the 2 GiB maximum
	}
}

// withDefaults fills in the limits left zero.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxStreams <= 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.MaxStreamsPerConn <= 0 {
		l.MaxStreamsPerConn = d.MaxStreamsPerConn
	}
	if l.MaxShmBytes <= 0 {
		l.MaxShmBytes = d.MaxShmBytes
	}
	if l.MaxShmBytesPerConn <= 0 {
		l.MaxShmBytesPerConn = d.MaxShmBytesPerConn
	}
	return l
}

// limiter counts what each connection holds. Safe for concurrent use.
type limiter struct {
	cfg      Limits
	rejected func(limit string) // counts a refusal by the limit's name
	burst    func()             // called (not blocking) when the streams fall to a quarter of a burst's peak

	mu      sync.Mutex // guards streams, shm, conns, peak
	streams int
	shm     int64
	conns   map[*connTag]*connUse // connections holding anything
	peak    int                   // the most streams open since burst was last called
}

// connUse is what one connection holds.
type connUse struct {
	streams int
	shm     int64
}

func newLimiter(cfg Limits, rejected func(string), burst func()) *limiter {
	return &limiter{cfg: cfg.withDefaults(), rejected: rejected, burst: burst, conns: map[*connTag]*connUse{}}
}

// acquire takes streams and shm bytes for the connection of ctx, or
// refuses with RESOURCE_EXHAUSTED; release gives them back (once).
func (l *limiter) acquire(ctx context.Context, streams int, shm int64) (release func(), err error) {
	conn := connOf(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	use := l.conns[conn]
	if use == nil {
		use = &connUse{}
	}
	c := l.cfg
	switch {
	case streams > 0 && use.streams+streams > c.MaxStreamsPerConn:
		return nil, l.refuse("streams_per_conn", fmt.Sprintf("%d streams open on this connection", use.streams), "--max-streams-per-conn", c.MaxStreamsPerConn)
	case streams > 0 && l.streams+streams > c.MaxStreams:
		return nil, l.refuse("streams", fmt.Sprintf("%d streams open on this server", l.streams), "--max-streams", c.MaxStreams)
	case shm > 0 && use.shm+shm > c.MaxShmBytesPerConn:
		return nil, l.refuseBytes("shm_bytes_per_conn", fmt.Sprintf("%s of shm regions open on this connection, %s more asked", humanize.IBytes(uint64(use.shm)), humanize.IBytes(uint64(shm))), "--max-shm-per-conn", c.MaxShmBytesPerConn)
	case shm > 0 && l.shm+shm > c.MaxShmBytes:
		return nil, l.refuseBytes("shm_bytes", fmt.Sprintf("%s of shm regions open on this server, %s more asked", humanize.IBytes(uint64(l.shm)), humanize.IBytes(uint64(shm))), "--max-shm", c.MaxShmBytes)
	}
	use.streams += streams
	use.shm += shm
	l.streams += streams
	l.shm += shm
	l.peak = max(l.peak, l.streams)
	l.conns[conn] = use
	var once sync.Once
	return func() { once.Do(func() { l.release(conn, streams, shm) }) }, nil
}

// shrink turns of shm bytes that acquire took for the connection of ctx
// into keep of them, in one step (so it cannot be refused: keep is at
// most of), and returns the release of what is kept. The release acquire
// returned for of must not be called after it.
func (l *limiter) shrink(ctx context.Context, of, keep int64) (release func()) {
	conn := connOf(ctx)
	keep = min(max(keep, 0), of)
	l.release(conn, 0, of-keep)
	var once sync.Once
	return func() { once.Do(func() { l.release(conn, 0, keep) }) }
}

func (l *limiter) release(conn *connTag, streams int, shm int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streams -= streams
	l.shm -= shm
	if l.peak >= trimMinPeak && l.streams <= l.peak/4 {
		l.peak = l.streams
		l.burst()
	}
	if use := l.conns[conn]; use != nil {
		use.streams -= streams
		use.shm -= shm
		if use.streams == 0 && use.shm == 0 {
			delete(l.conns, conn)
		}
	}
}

// held returns the streams and shm bytes held over all connections, and
// the number of connections holding anything.
func (l *limiter) held() (streams int, shm int64, conns int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streams, l.shm, len(l.conns)
}

func (l *limiter) refuse(name, now, flag string, limit int) error {
	l.rejected(name)
	return status.Errorf(codes.ResourceExhausted, "stokerd: limit reached: %s, the most allowed (%s %d): close some, or raise the limit", now, flag, limit)
}

func (l *limiter) refuseBytes(name, now, flag string, limit int64) error {
	l.rejected(name)
	return status.Errorf(codes.ResourceExhausted, "stokerd: limit reached: %s, over the most allowed (%s %s): close some streams, ask for smaller regions (shm_region_bytes), or raise the limit",
		now, flag, humanize.IBytes(uint64(limit)))
}

// limitStream is the stream interceptor that counts a stream against the
// limits for as long as it is open.
func (s *Server) limitStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	release, err := s.limits.acquire(ss.Context(), 1, 0)
	if err != nil {
		return err
	}
	defer release()
	return handler(srv, ss)
}

// connTag identifies one client connection: the stats handler puts a new
// one in the context of every connection, which each call's context
// inherits (a unix socket's peers all share one address, so the address
// cannot tell them apart).
type connTag struct{ remote string }

type connTagKey struct{}

// connOf returns the connection of a call's context; calls made without a
// tagged connection share one tag.
func connOf(ctx context.Context) *connTag {
	if c, ok := ctx.Value(connTagKey{}).(*connTag); ok {
		return c
	}
	return untagged
}

var untagged = &connTag{remote: "untagged"}

// connTagger is the stats.Handler that tags connections.
type connTagger struct{}

var _ stats.Handler = connTagger{}

func (connTagger) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	remote := ""
	if info.RemoteAddr != nil {
		remote = info.RemoteAddr.String()
	}
	return context.WithValue(ctx, connTagKey{}, &connTag{remote: remote})
}
func (connTagger) HandleConn(context.Context, stats.ConnStats)                     {}
func (connTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (connTagger) HandleRPC(context.Context, stats.RPCStats)                       {}
