package shm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

	mu      sync.Mutex // guards regions
	regions map[string]*Region

	regionBytes atomic.Int64  // sum of open regions' sizes
	leases      atomic.Int64  // leases held now, over all regions
	leasedBytes atomic.Int64  // bytes of those leases (wrap padding included)
	served      atomic.Uint64 // bytes placed in regions so far
	waits       atomic.Uint64 // times a stream waited for releases
	extentBytes atomic.Uint64 // field bytes handed out as disk extents
	tierBytes   atomic.Uint64 // field bytes handed out in the shared memory tier
}

// New returns an empty registry whose regions are files in dir.
func New(dir string) *Registry {
	return &Registry{dir: dir, regions: map[string]*Region{}}
}

// Dir is the folder the registry's region files are in.
func (r *Registry) Dir() string { return r.dir }

// Stats is a snapshot of a registry's gauges and counters.
type Stats struct {
	Regions     int    // regions open now
	RegionBytes int64  // sum of the open regions' sizes
	Leases      int64  // leases held now, over all regions
	LeasedBytes int64  // bytes of those leases (wrap padding included)
	Served      uint64 // bytes placed in regions so far (AddServed)
	Waits       uint64 // times an Alloc waited for releases
	ExtentBytes uint64 // field bytes handed out as disk extents (AddExtentBytes)
	TierBytes   uint64 // field bytes handed out in the shared memory tier (AddTierBytes)
}

// Stats returns the registry's figures now.
func (r *Registry) Stats() Stats {
	return Stats{
		Regions: r.Count(), RegionBytes: r.regionBytes.Load(),
		Leases: r.leases.Load(), LeasedBytes: r.leasedBytes.Load(),
		Served: r.served.Load(), Waits: r.waits.Load(),
		ExtentBytes: r.extentBytes.Load(), TierBytes: r.tierBytes.Load(),
	}
}

// AddServed counts n bytes the caller placed in a region's leases.
func (r *Registry) AddServed(n uint64) { r.served.Add(n) }

// AddExtentBytes counts n field bytes the caller handed out as disk
// extents instead of placing them in a region.
func (r *Registry) AddExtentBytes(n uint64) { r.extentBytes.Add(n) }

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

// Region is one stream's ring of leased byte ranges in a shared file.
// Allocation is in order at the head; the tail moves past the oldest lease
// once it and all before it are released, so a client may release out of
// order. Safe for concurrent use.
type Region struct {
	reg        *Registry
	id, path   string
	mem        []byte
	closedOnce sync.Once
	ring       int // bytes at the start that are the release ring (0: none); leases come after

	mu     sync.Mutex // guards the fields below
	closed bool
	head   int64 // monotonic: bytes ever allocated (padding included)
	tail   int64 // monotonic: bytes freed
	next   uint64
	pinned int64    // bytes of tier fields the live leases hold
	order  []*Lease // live leases in allocation order
	leases map[uint64]*Lease
	room   chan struct{} // closed and replaced when bytes are freed
	// The ring's oddities: ids not held, and reads that found the
	// client's counter past its bound.
	ringUnknown, ringOverruns uint64
}

// Lease is a byte range of a region handed to a client until it releases
// it by id.
type Lease struct {
	id         uint64
	start, end int64  // monotonic range, padding included
	off, n     int    // the bytes handed out
	pinned     int64  // bytes of tier fields it holds
	step       uint64 // the step of its message
	released   bool
	unpins     []func() // disk extents held with the lease (gds)
}

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

// Alloc leases n bytes for a message of step, holding pinned bytes of
// fields in the memory tier with them, waiting while the region is full,
// or the stream's tier fields held would pass the region's size, until the client
// releases enough, ctx ends or the region closes. Clients release a step's
// leases once they have all of its parts, so a step never waits on its
// own leases: past the pin limit it goes on, and a step whose parts alone
// fill the ring is an error.
func (g *Region) Alloc(ctx context.Context, n int, pinned int64, step uint64) (*Lease, error) {
	size := int64(len(g.mem) - g.ring)
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
		pos := g.head % size
		pad := int64(0)
		if pos+int64(n) > size {
			pad = size - pos       // wrap: skip the end of the ring
			if len(g.order) == 0 { // nothing held: the whole ring is free
				g.head += pad
				g.tail, pad = g.head, 0
			}
		}
		ownStep := len(g.order) == 0 || g.order[0].step == step // every live lease is this step's
		fits := g.head+pad+int64(n)-g.tail <= size
		if fits && (g.pinned+pinned <= size || ownStep) {
			l := &Lease{id: g.next, start: g.head, end: g.head + pad + int64(n), off: g.ring + int((g.head+pad)%size), n: n, pinned: pinned, step: step}
			g.next++
			g.head = l.end
			g.pinned += pinned
			g.order = append(g.order, l)
			g.leases[l.id] = l
			g.mu.Unlock()
			g.reg.leases.Add(1)
			g.reg.leasedBytes.Add(l.end - l.start)
			return l, nil
		}
		if !fits && ownStep {
			g.mu.Unlock()
			return nil, fmt.Errorf("shm: step %d needs more than the region's %d bytes: %w", step, size, ErrTooBig)
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
		l.released = true
		if l.pinned > 0 {
			g.pinned -= l.pinned
			freed = true
		}
		for _, u := range l.unpins {
			u()
		}
		l.unpins = nil
		g.reg.leases.Add(-1)
		g.reg.leasedBytes.Add(-(l.end - l.start))
	}
	for len(g.order) > 0 && g.order[0].released {
		g.tail = g.order[0].end
		g.order = g.order[1:]
		freed = true
	}
	if len(g.order) == 0 {
		g.tail = g.head
	}
	if freed {
		close(g.room)
		g.room = make(chan struct{})
	}
	return unknown, freed
}

// Drain returns once no lease is held, the region is closed, or ctx ends.
func (g *Region) Drain(ctx context.Context) {
	for {
		g.mu.Lock()
		g.readRingLocked()
		if g.closed || len(g.order) == 0 {
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

// Len is the bytes the lease hands out (wrap padding not included).
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
			g.reg.leasedBytes.Add(-(l.end - l.start))
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
