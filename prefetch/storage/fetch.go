package storage

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// FetchOptions sets how Fetch reads an object. The zero value takes the
// defaults.
type FetchOptions struct {
	// PartSize is the size of one ranged read (default 8 MiB). An object
	// larger than this is read as parallel ranges.
	PartSize int64
	// Parallel is how many ranges are read at once (default 4).
	Parallel int
	// MaxSize refuses objects larger than this with ErrTooLarge, before
	// allocating (default 0: no limit).
	MaxSize int64
	// Gets, when set, bounds the ranged reads in flight over every Fetch
	// that shares it: each range waits for a slot (default nil: Parallel
	// alone bounds them).
	Gets *GetSlots
}

const (
	defaultPartSize = 8 << 20
	defaultParallel = 4
)

// Fetch reads the whole of obj from src into one new buffer. An object
// larger than opt.PartSize is read as ranges of that size, opt.Parallel at
// a time; the first error cancels the others and is returned as it is (an
// *Error from src). Every range carries obj.ETag, so a rewrite while
// reading is ErrChanged, never a mix of versions. An obj without an ETag is
// Stat'ed first to pin its size and version.
//
// Fetch is safe to call concurrently if src is (every Source is).
func Fetch(ctx context.Context, src Source, obj Object, opt FetchOptions) ([]byte, error) {
	if opt.PartSize <= 0 {
		opt.PartSize = defaultPartSize
	}
	if opt.Parallel <= 0 {
		opt.Parallel = defaultParallel
	}
	if obj.ETag == "" {
		o, err := src.Stat(ctx, obj.URL)
		if err != nil {
			return nil, err
		}
		obj = o
	}
	if obj.Size < 0 {
		return nil, &Error{Op: "fetch", Object: obj.URL, Kind: ErrCorrupt, Err: fmt.Errorf("negative size %d", obj.Size)}
	}
	if opt.MaxSize > 0 && obj.Size > opt.MaxSize {
		return nil, &Error{Op: "fetch", Object: obj.URL, Kind: ErrTooLarge, Err: fmt.Errorf("%d bytes, limit %d", obj.Size, opt.MaxSize)}
	}
	buf := make([]byte, obj.Size)
	if obj.Size == 0 {
		return buf, nil
	}
	read := func(ctx context.Context, p []byte, off int64) error {
		if err := opt.Gets.acquire(ctx); err != nil {
			return &Error{Op: "fetch", Object: obj.URL, Kind: ErrUnavailable, Err: err}
		}
		defer opt.Gets.release()
		return src.ReadAt(ctx, obj, p, off)
	}
	if obj.Size <= opt.PartSize {
		if err := read(ctx, buf, 0); err != nil {
			return nil, err
		}
		return buf, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Parallel)
	for off := int64(0); off < obj.Size; off += opt.PartSize {
		end := min(off+opt.PartSize, obj.Size)
		if gctx.Err() != nil {
			break // a part failed: start no more
		}
		g.Go(func() error { return read(gctx, buf[off:end], off) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "fetch", Object: obj.URL, Kind: ErrUnavailable, Err: err}
	}
	return buf, nil
}

// GetSlots bounds the ranged reads in flight over the Fetches sharing it,
// so the parts of one object do not take every connection from the others;
// waiters get slots in the order they asked. A nil *GetSlots bounds
// nothing. Safe for concurrent use.
type GetSlots struct{ ch chan struct{} }

// NewGetSlots returns a bound of n reads in flight (at least one).
func NewGetSlots(n int) *GetSlots { return &GetSlots{ch: make(chan struct{}, max(1, n))} }

func (s *GetSlots) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// spare is how many more reads could start now.
func (s *GetSlots) Spare() int {
	if s == nil {
		return math.MaxInt
	}
	return cap(s.ch) - len(s.ch)
}

func (s *GetSlots) release() {
	if s != nil {
		<-s.ch
	}
}

// Bounds of the part size chosen from a link's estimate.
const (
	// MinPartSize is the smallest part an object is split into, and only
	// where connections would stay idle otherwise: below it the requests'
	// own cost (signing, a first byte each, S3's price per request)
	// outweighs what more connections bring.
	MinPartSize = 512 << 10
	// busyPartSize is the smallest part where connections are not idle.
	busyPartSize = 1 << 20
	// MaxPartSize is the largest part, whatever the link: S3's guidance
	// for ranged reads is 8 to 16 MB.
	MaxPartSize = 16 << 20
	// partAlign rounds parts up to whole 64 KiB.
	partAlign = 64 << 10
)

// typicalLink is assumed before a source has completed a read: S3 in the
// same region, about 25 ms to the first byte and 90 MB/s per connection.
var typicalLink = LinkEstimate{FirstByte: 25 * time.Millisecond, Rate: 90e6}

// PartSize returns the size of the parts an object of size bytes is read
// in over a link estimated as e, with spare more reads free to start now.
// A part's body takes about as long as its first byte (the link's
// bandwidth-delay product), so the object arrives in about two first bytes
// while each connection still spends half its time moving bytes: at least
// 1 MiB and at most MaxPartSize. Where that makes fewer parts than spare,
// the object is split into more, down to MinPartSize, so connections that
// would stay idle shorten the wait for it. Parts are equal, the last no
// larger. An estimate without both figures is taken as typicalLink.
func PartSize(size int64, e LinkEstimate, spare int) int64 {
	if e.FirstByte <= 0 || e.Rate <= 0 || math.IsNaN(e.Rate) || math.IsInf(e.Rate, 0) {
		e = typicalLink
	}
	target := float64(MaxPartSize)
	if bdp := e.Rate * e.FirstByte.Seconds(); bdp < target {
		target = bdp
	}
	part := max(busyPartSize, int64(target))
	n := ceilDiv(max(size, 1), part) // parts
	if idle := int64(spare); idle > n {
		n = max(n, min(idle, size/MinPartSize))
	}
	if n <= 1 {
		return part // one read
	}
	part = ceilDiv(size, n) // equal parts, the last one no larger
	return min(ceilDiv(part, partAlign)*partAlign, MaxPartSize)
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0, without overflow.
func ceilDiv(a, b int64) int64 {
	n := a / b
	if a%b != 0 {
		n++
	}
	return n
}

// LinkEstimate is what reads from a source have shown of one connection.
type LinkEstimate struct {
	// FirstByte is the time from sending a request to its response's
	// headers; 0 when no read has completed.
	FirstByte time.Duration
	// Rate is the bytes per second a response body arrives at; 0 when no
	// read large enough to tell has completed.
	Rate float64
}

// Linked is implemented by the Sources that estimate their connections
// from their reads (S3Source), and passed on by the Sources that wrap
// others; ok is false where the wrapped Source estimates nothing.
type Linked interface {
	Link() (e LinkEstimate, ok bool)
}

// LinkOf returns src's estimate, and false when it makes none.
func LinkOf(src Source) (LinkEstimate, bool) {
	if l, ok := src.(Linked); ok {
		return l.Link()
	}
	return LinkEstimate{}, false
}

// Link estimates a source's connections from its completed reads: each
// figure is an exponentially weighted moving average, so it follows the
// store's load within a few dozen reads. The zero value has seen nothing.
// Safe for concurrent use.
type Link struct {
	mu  sync.Mutex   // guards est
	est LinkEstimate // the averages; a zero figure has no sample yet
}

const (
	// linkWeight is the weight of a new sample (TCP's smoothed RTT's).
	linkWeight = 1.0 / 8
	// minRateSample is the smallest body whose time tells the rate: a
	// smaller one arrives in a few packets, at the speed of the loopback.
	minRateSample = 256 << 10
)

// Observe adds a completed read: firstByte from request to headers, then
// n body bytes in body.
func (l *Link) Observe(firstByte time.Duration, n int, body time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if firstByte > 0 {
		if l.est.FirstByte == 0 {
			l.est.FirstByte = firstByte
		} else {
			l.est.FirstByte += time.Duration(linkWeight * float64(firstByte-l.est.FirstByte))
		}
	}
	if n >= minRateSample && body > 0 {
		r := float64(n) / body.Seconds()
		if l.est.Rate == 0 {
			l.est.Rate = r
		} else {
			l.est.Rate += linkWeight * (r - l.est.Rate)
		}
	}
}

// Estimate returns the averages so far.
func (l *Link) Estimate() LinkEstimate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.est
}
