package server

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

// errRegionClosed means the stream that owned a region ended.
var errRegionClosed = errors.New("shm region closed")

// errTooBig means a message cannot fit its region even when empty.
var errTooBig = errors.New("message larger than the shm region")

// shmRegistry owns every open shared-memory region, so ReleaseShm finds
// them by id and Stats can sum them. Safe for concurrent use.
type shmRegistry struct {
	dir string

	mu      sync.Mutex // guards regions
	regions map[string]*shmRegion

	regionBytes atomic.Int64  // sum of open regions' sizes
	leases      atomic.Int64  // leases held now, over all regions
	leasedBytes atomic.Int64  // bytes of those leases (wrap padding included)
	served      atomic.Uint64 // bytes placed in regions so far
	waits       atomic.Uint64 // times a stream waited for releases
	extentBytes atomic.Uint64 // field bytes handed out as disk extents
	tierBytes   atomic.Uint64 // field bytes handed out in the shared memory tier
}

func newShmRegistry(dir string) *shmRegistry {
	return &shmRegistry{dir: dir, regions: map[string]*shmRegion{}}
}

// open makes a region of size bytes: a file under the registry's folder,
// mapped shared, its first ringBytes a release ring when ring is set. The
// stream that opens it closes it.
func (r *shmRegistry) open(size int, ring bool) (*shmRegion, error) {
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
	fail := func(err error) (*shmRegion, error) {
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
	g := &shmRegion{reg: r, id: id, path: path, mem: mem, leases: map[uint64]*shmLease{}, room: make(chan struct{}), next: 1}
	if ring {
		g.ring = ringBytes
	}
	r.mu.Lock()
	r.regions[id] = g
	r.mu.Unlock()
	r.regionBytes.Add(int64(size))
	return g, nil
}

// get finds an open region.
func (r *shmRegistry) get(id string) *shmRegion {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.regions[id]
}

// count returns the regions open now.
func (r *shmRegistry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.regions)
}

// sweep removes region files left by stokerd processes that died without
// closing them (the pid in the name is gone).
func (r *shmRegistry) sweep() {
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

// shmRegion is one stream's ring of leased byte ranges. Allocation is in
// order at the head; the tail moves past the oldest lease once it and all
// before it are released, so a client may release out of order.
type shmRegion struct {
	reg        *shmRegistry
	id, path   string
	mem        []byte
	closedOnce sync.Once
	ring       int // bytes at the start that are the release ring (0: none); leases come after

	mu     sync.Mutex // guards the fields below
	closed bool
	head   int64 // monotonic: bytes ever allocated (padding included)
	tail   int64 // monotonic: bytes freed
	next   uint64
	pinned int64       // bytes of tier fields the live leases hold
	order  []*shmLease // live leases in allocation order
	leases map[uint64]*shmLease
	room   chan struct{} // closed and replaced when bytes are freed
	// The ring's oddities: ids not held, and reads that found the
	// client's counter past its bound.
	ringUnknown, ringOverruns uint64
}

type shmLease struct {
	id         uint64
	start, end int64  // monotonic range, padding included
	off, n     int    // the bytes handed out
	pinned     int64  // bytes of tier fields it holds
	step       uint64 // the step of its message
	released   bool
	unpins     []func() // disk extents held with the lease (gds)
}

// attach ties unpins to l: they run when l is released or the region
// closes.
func (g *shmRegion) attach(l *shmLease, unpins []func()) {
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

// alloc leases n bytes for a message of step, holding pinned bytes of
// fields in the memory tier with them, waiting while the region is full,
// or the stream's tier fields held would pass the region's size, until the client
// releases enough, ctx ends or the region closes. Clients release a step's
// leases once they have all of its parts, so a step never waits on its
// own leases: past the pin limit it goes on, and a step whose parts alone
// fill the ring is an error.
func (g *shmRegion) alloc(ctx context.Context, n int, pinned int64, step uint64) (*shmLease, error) {
	size := int64(len(g.mem) - g.ring)
	if int64(n) > size {
		return nil, fmt.Errorf("shm: %d bytes in a region of %d: %w", n, size, errTooBig)
	}
	waited := false
	for {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return nil, errRegionClosed
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
			l := &shmLease{id: g.next, start: g.head, end: g.head + pad + int64(n), off: g.ring + int((g.head+pad)%size), n: n, pinned: pinned, step: step}
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
			return nil, fmt.Errorf("shm: step %d needs more than the region's %d bytes: %w", step, size, errTooBig)
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

// release frees leases by id; ids not held are reported, not fatal.
func (g *shmRegion) release(ids []uint64) (unknown int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(ids)
	}
	unknown, _ = g.releaseLocked(ids)
	return unknown
}

// releaseLocked is release with g.mu held, g open; it also reports
// whether bytes were freed (and waiters woken).
func (g *shmRegion) releaseLocked(ids []uint64) (unknown int, freed bool) {
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

// drain returns once no lease is held, or when ctx ends.
func (g *shmRegion) drain(ctx context.Context) {
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

// bytes is the leased range of l.
func (g *shmRegion) bytes(l *shmLease) []byte { return g.mem[l.off : l.off+l.n] }

// close frees every lease, unmaps and removes the file: the client's
// mapping stays valid, the region's pages go when it unmaps. Idempotent.
func (g *shmRegion) close() {
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
