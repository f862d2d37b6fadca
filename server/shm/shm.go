package shm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrRegionClosed means the region was closed (the stream that owned it
// ended) while a lease was asked for.
var ErrRegionClosed = errors.New("shm region closed")

// ErrTooBig means a lease cannot fit its region even when the region is
// empty, or a step's leases alone would fill it.
var ErrTooBig = errors.New("message larger than the shm region")

// Registry owns every open shared-memory region of a server, so a
// release call finds a region by its id and the server's Stats can sum
// them. Safe for concurrent use.
type Registry struct {
	dir string

	mu        sync.Mutex // guards regions
	regions   map[string]*Region
	closing   chan struct{} // closed by Close: detached regions' reapers stop
	closeOnce sync.Once

	regionBytes atomic.Int64  // sum of open regions' sizes
	leases      atomic.Int64  // leases held now, over all regions
	leasedBytes atomic.Int64  // bytes of those leases
	served      atomic.Uint64 // bytes placed in regions so far
	waits       atomic.Uint64 // times a stream waited for releases
	extentBytes atomic.Uint64 // field bytes handed out as disk extents
	tierBytes   atomic.Uint64 // field bytes handed out in the shared memory tier
	detached    atomic.Int64  // regions whose stream ended while the client held views
	fallbacks   atomic.Uint64 // messages sent in the message, not the region, because views held it
}

// New returns an empty registry whose regions are files in dir.
func New(dir string) *Registry {
	return &Registry{dir: dir, regions: map[string]*Region{}, closing: make(chan struct{})}
}

// Dir is the folder the registry's region files are in.
func (r *Registry) Dir() string { return r.dir }

// Stats is a snapshot of a registry's gauges and counters.
type Stats struct {
	Regions     int    // regions open now
	RegionBytes int64  // sum of the open regions' sizes
	Leases      int64  // leases held now, over all regions
	LeasedBytes int64  // bytes of those leases
	Served      uint64 // bytes placed in regions so far (AddServed)
	Waits       uint64 // times an Alloc waited for releases
	ExtentBytes uint64 // field bytes handed out as disk extents (AddExtentBytes)
	TierBytes   uint64 // field bytes handed out in the shared memory tier (AddTierBytes)
	Detached    int64  // regions open past their stream for the views their client holds
	Fallbacks   uint64 // messages whose bytes went in the message because views held the region (AddFallback)
}

// Stats returns the registry's figures now.
func (r *Registry) Stats() Stats {
	return Stats{
		Regions: r.Count(), RegionBytes: r.regionBytes.Load(),
		Leases: r.leases.Load(), LeasedBytes: r.leasedBytes.Load(),
		Served: r.served.Load(), Waits: r.waits.Load(),
		ExtentBytes: r.extentBytes.Load(), TierBytes: r.tierBytes.Load(),
		Detached: r.detached.Load(), Fallbacks: r.fallbacks.Load(),
	}
}

// AddServed counts n bytes the caller placed in a region's leases.
func (r *Registry) AddServed(n uint64) { r.served.Add(n) }

// AddExtentBytes counts n field bytes the caller handed out as disk
// extents instead of placing them in a region.
func (r *Registry) AddExtentBytes(n uint64) { r.extentBytes.Add(n) }

// AddFallback counts a message sent with its bytes in it because the
// client's views held its region (ErrHeld).
func (r *Registry) AddFallback() { r.fallbacks.Add(1) }

// AddTierBytes counts n field bytes the caller handed out in place in the
// shared memory tier instead of placing them in a region.
func (r *Registry) AddTierBytes(n uint64) { r.tierBytes.Add(n) }

// Open makes a region of size bytes: a file under the registry's folder,
// named stoker-PID-ID.shm, mapped shared, its first RingBytes a release
// ring when ring is set. The caller (the stream that opens it) closes it.
func (r *Registry) Open(size int, ring bool) (*Region, error) {
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(idb[:])
	path := filepath.Join(r.dir, fmt.Sprintf("stoker-%d-%s.shm", os.Getpid(), id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shm: create region: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	fail := func(err error) (*Region, error) {
		_ = os.Remove(path)
		return nil, fmt.Errorf("shm: region %s of %d bytes: %w", path, size, err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		return fail(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	// Lease ids start at 1: a ring slot the client never wrote holds 0.
	g := &Region{reg: r, id: id, path: path, mem: mem, leases: map[uint64]*Lease{}, room: make(chan struct{}), next: 1}
	if ring {
		g.ring = RingBytes
	}
	r.mu.Lock()
	r.regions[id] = g
	r.mu.Unlock()
	r.regionBytes.Add(int64(size))
	return g, nil
}

// Get finds an open region by its id; nil when none is open.
func (r *Registry) Get(id string) *Region {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.regions[id]
}

// Count returns the regions open now.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.regions)
}

// Sweep removes region files left in the registry's folder by stokerd
// processes that died without closing them (the pid in the name is gone).
func (r *Registry) Sweep() {
	m, _ := filepath.Glob(filepath.Join(r.dir, "stoker-*-*.shm"))
	for _, p := range m {
		pid, err := strconv.Atoi(strings.Split(filepath.Base(p), "-")[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			_ = os.Remove(p)
		}
	}
}

// Region is one stream's leased byte ranges in a shared file. Leases are
// placed next-fit from where the last one ended, around the live ones, so
// a client that releases in order sees a ring, and one that keeps a few
// old leases (views it still holds) only makes the allocator step around
// them. Safe for concurrent use.
type Region struct {
	reg        *Registry
	id, path   string
	mem        []byte
	closedOnce sync.Once
	ring       int // bytes at the start that are the release ring (0: none); leases come after

	mu       sync.Mutex // guards the fields below
	closed   bool
	cursor   int64    // where the next lease is tried first, past the ring
	next     uint64   // the next lease id
	consumed uint64   // from the ring: steps before it are the client's, whole (untrusted)
	pinned   int64    // bytes of tier fields the live leases hold
	order    []*Lease // live leases by offset
	leases   map[uint64]*Lease
	room     chan struct{} // closed and replaced when bytes are freed
	// The ring's oddities: ids not held, and reads that found the
	// client's counter past its bound.
	ringUnknown, ringOverruns uint64
}

// Lease is a byte range of a region handed to a client until it releases
// it by id.
type Lease struct {
	id     uint64
	pos    int64    // where its bytes start, past the ring
	off, n int      // the bytes handed out
	pinned int64    // bytes of tier fields it holds
	step   uint64   // the step of its message
	unpins []func() // disk extents held with the lease (gds)
}

// ErrHeld means a lease does not fit and cannot until the client lets go
// of views it holds (leases of steps it has whole and keeps), or such
// views hold more than half the region: the caller sends the message's
// bytes another way (in the message) instead of waiting, which could be
// forever.
var ErrHeld = errors.New("shm region held by the client's views")

// Attach ties unpins to l: they run when l is released or the region
// closes (at once when it is closed already).
func (g *Region) Attach(l *Lease, unpins []func()) {
	if len(unpins) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		for _, u := range unpins {
			u()
		}
		return
	}
	l.unpins = unpins
}

// size is the bytes leases may use.
func (g *Region) size() int64 { return int64(len(g.mem) - g.ring) }

// heldLocked says whether the client holds l as a view: its step is one
// the client has whole (the ring's consumed counter is past it).
func (g *Region) heldLocked(l *Lease) bool { return l.step < g.consumed }

// fitLocked finds n free bytes, next-fit from the cursor then from the
// start, among the live leases that keep says count (all when nil).
func (g *Region) fitLocked(n int64, keep func(*Lease) bool) (int64, bool) {
	size := g.size()
	for _, from := range [2]int64{g.cursor, 0} {
		a := int64(0)
		for _, l := range g.order {
			if keep != nil && !keep(l) {
				continue
			}
			if s := max(a, from); l.pos-s >= n {
				return s, true
			}
			a = max(a, l.pos+int64(l.n))
		}
		if s := max(a, from); size-s >= n {
			return s, true
		}
	}
	return 0, false
}

// Held is what the live leases the client holds as views take: bytes
// of the region, and bytes of tier fields they pin.
func (g *Region) Held() (bytes, pinned int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.readRingLocked()
	for _, l := range g.order {
		if g.heldLocked(l) {
			bytes += int64(l.n)
			pinned += l.pinned
		}
	}
	return bytes, pinned
}

// Alloc leases n bytes for a message of step, holding pinned bytes of
// fields in the memory tier with them, waiting while the region is full,
// or the stream's tier fields held would pass the region's size, until the
// client releases enough, ctx ends or the region closes. Clients release
// a step's leases once they have all of its parts, so a step never waits
// on its own leases: past the pin limit it goes on, and a step whose parts
// alone fill the region is an error (ErrTooBig). Nor does it wait on
// leases the client holds as views (see heldLocked): when only their
// release could make room, or they take more than half the region, it
// returns ErrHeld.
func (g *Region) Alloc(ctx context.Context, n int, pinned int64, step uint64) (*Lease, error) {
	size := g.size()
	if int64(n) > size {
		return nil, fmt.Errorf("shm: %d bytes in a region of %d: %w", n, size, ErrTooBig)
	}
	waited := false
	for {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return nil, ErrRegionClosed
		}
		g.readRingLocked()
		var held, heldPinned, ownPinned int64
		ownOnly := true // every live lease is this step's
		for _, l := range g.order {
			switch {
			case l.step == step:
				ownPinned += l.pinned
			case g.heldLocked(l):
				held += int64(l.n)
				heldPinned += l.pinned
				ownOnly = false
			default:
				ownOnly = false
			}
		}
		pinsFit := g.pinned+pinned <= size || ownOnly
		if pos, ok := g.fitLocked(int64(n), nil); ok && pinsFit {
			l := &Lease{id: g.next, pos: pos, off: g.ring + int(pos), n: n, pinned: pinned, step: step}
			g.next++
			g.cursor = pos + int64(n)
			g.pinned += pinned
			i := sort.Search(len(g.order), func(i int) bool { return g.order[i].pos > pos })
			g.order = slices.Insert(g.order, i, l)
			g.leases[l.id] = l
			g.mu.Unlock()
			g.reg.leases.Add(1)
			g.reg.leasedBytes.Add(int64(n))
			return l, nil
		}
		// What stays however long it waits: the step's own leases and
		// the views the client holds.
		stays := func(l *Lease) bool { return l.step == step || g.heldLocked(l) }
		_, could := g.fitLocked(int64(n), stays)
		if could && !pinsFit {
			could = heldPinned+ownPinned+pinned <= size
		}
		if !could || 2*held > size {
			g.mu.Unlock()
			if held == 0 && heldPinned == 0 {
				return nil, fmt.Errorf("shm: step %d needs more than the region's %d bytes: %w", step, size, ErrTooBig)
			}
			return nil, fmt.Errorf("shm: %d bytes for step %d, %d of the region's %d held by views: %w", n, step, held, size, ErrHeld)
		}
		room := g.room
		g.mu.Unlock()
		if !waited {
			waited = true
			g.reg.waits.Add(1)
		}
		g.waitRoom(ctx.Done(), room)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Release frees leases by id; ids not held are counted in unknown, not
// fatal (all of them once the region is closed).
func (g *Region) Release(ids []uint64) (unknown int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(ids)
	}
	unknown, _ = g.releaseLocked(ids)
	return unknown
}

// releaseLocked is Release with g.mu held, g open; it also reports
// whether bytes were freed (and waiters woken).
func (g *Region) releaseLocked(ids []uint64) (unknown int, freed bool) {
	for _, id := range ids {
		l, ok := g.leases[id]
		if !ok {
			unknown++
			continue
		}
		delete(g.leases, id)
		g.order = slices.DeleteFunc(g.order, func(o *Lease) bool { return o == l })
		g.pinned -= l.pinned
		for _, u := range l.unpins {
			u()
		}
		l.unpins = nil
		freed = true
		g.reg.leases.Add(-1)
		g.reg.leasedBytes.Add(-int64(l.n))
	}
	if freed {
		close(g.room)
		g.room = make(chan struct{})
	}
	return unknown, freed
}

// Drain returns once no lease is in flight (every live one is released
// or held by the client as a view, so the client has had every message
// and mapped the region), the region is closed, or ctx ends.
func (g *Region) Drain(ctx context.Context) {
	for {
		g.mu.Lock()
		g.readRingLocked()
		inFlight := false
		for _, l := range g.order {
			if !g.heldLocked(l) {
				inFlight = true
				break
			}
		}
		if g.closed || !inFlight {
			g.mu.Unlock()
			return
		}
		room := g.room
		g.mu.Unlock()
		g.waitRoom(ctx.Done(), room)
		if ctx.Err() != nil {
			return
		}
	}
}

// Bytes is the leased range of l, in the region's mapping.
func (g *Region) Bytes(l *Lease) []byte { return g.mem[l.off : l.off+l.n] }

// ID is the region's id, which a client names in its release calls.
func (g *Region) ID() string { return g.id }

// Path is the region's file, which the client maps.
func (g *Region) Path() string { return g.path }

// Size is the region's bytes, its release ring included.
func (g *Region) Size() int { return len(g.mem) }

// Ring is the bytes at the region's start that are its release ring (0:
// none); leases lie after them.
func (g *Region) Ring() int { return g.ring }

// ID is the lease's id, which the client releases.
func (l *Lease) ID() uint64 { return l.id }

// Offset is where the lease's bytes start in the region.
func (l *Lease) Offset() int { return l.off }

// Len is the bytes the lease hands out.
func (l *Lease) Len() int { return l.n }

// Close frees every lease (running what was attached), unmaps and removes
// the file: the client's mapping stays valid, the region's pages go when
// it unmaps. Idempotent.
func (g *Region) Close() {
	g.closedOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		for _, l := range g.leases {
			for _, u := range l.unpins {
				u()
			}
			g.reg.leases.Add(-1)
			g.reg.leasedBytes.Add(-int64(l.n))
		}
		g.leases, g.order = nil, nil
		close(g.room)
		g.mu.Unlock()
		g.reg.mu.Lock()
		delete(g.reg.regions, g.id)
		g.reg.mu.Unlock()
		_ = os.Remove(g.path)
		_ = unix.Munmap(g.mem)
		g.reg.regionBytes.Add(-int64(len(g.mem)))
	})
}
